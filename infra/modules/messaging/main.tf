# The event bus, from the plan the code itself prints (`stories contracts`):
# one SNS topic per producer, one SQS queue per consumer with its DLQ and
# redrive policy, raw-delivery subscriptions with the code's filter policies,
# and queue policies that let only those topics write. Alarms on DLQ depth and
# on the age of the oldest message.

variable "prefix" {
  type = string
}

variable "topology" {
  description = "The `topology` part of contracts.json (names without the prefix)."
  type        = any
}

variable "kms_key_arn" {
  type = string
}

variable "alarm_topic_arns" {
  type    = list(string)
  default = []
}

variable "max_message_age_seconds" {
  description = "Alarm when a queue's oldest message is older than this."
  type        = number
  default     = 300
}

locals {
  queues = { for queue in var.topology.queues : queue.name => queue }
  subscriptions = merge([
    for queue in var.topology.queues : {
      for subscription in queue.subscriptions :
      "${queue.name}<-${subscription.topic}" => merge(subscription, { queue = queue.name })
    }
  ]...)
}

resource "aws_sns_topic" "this" {
  for_each          = toset(var.topology.topics)
  name              = "${var.prefix}${each.key}"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sqs_queue" "dead_letter" {
  for_each                  = local.queues
  name                      = "${var.prefix}${each.value.dead_letter_queue}"
  message_retention_seconds = each.value.dead_letter_retention_seconds
  kms_master_key_id         = var.kms_key_arn
}

resource "aws_sqs_queue" "this" {
  for_each                   = local.queues
  name                       = "${var.prefix}${each.key}"
  visibility_timeout_seconds = each.value.visibility_seconds
  kms_master_key_id          = var.kms_key_arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = each.value.max_receive_count
  })
}

resource "aws_sqs_queue_policy" "only_our_topics" {
  for_each  = local.queues
  queue_url = aws_sqs_queue.this[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowPlatformTopics"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.this[each.key].arn
      Condition = {
        ArnEquals = {
          "aws:SourceArn" = [for s in each.value.subscriptions : aws_sns_topic.this[s.topic].arn]
        }
      }
    }]
  })
}

resource "aws_sns_topic_subscription" "this" {
  for_each             = local.subscriptions
  topic_arn            = aws_sns_topic.this[each.value.topic].arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.this[each.value.queue].arn
  raw_message_delivery = true
  filter_policy        = each.value.filter_policy
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each            = local.queues
  alarm_name          = "${var.prefix}${each.value.dead_letter_queue}-not-empty"
  alarm_description   = "Events the ${each.key} consumer could not apply (see stories dlq redrive)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter[each.key].name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = var.alarm_topic_arns
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each            = local.queues
  alarm_name          = "${var.prefix}${each.key}-falling-behind"
  alarm_description   = "The ${each.key} consumer is not keeping up with its queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.this[each.key].name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.max_message_age_seconds
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = var.alarm_topic_arns
  treat_missing_data  = "notBreaching"
}

output "topic_arns" {
  value = { for name, topic in aws_sns_topic.this : name => topic.arn }
}

output "queue_arns" {
  value = { for name, queue in aws_sqs_queue.this : name => queue.arn }
}

output "dead_letter_queue_arns" {
  value = { for name, queue in aws_sqs_queue.dead_letter : name => queue.arn }
}

output "queue_names" {
  value = { for name, queue in aws_sqs_queue.this : name => queue.name }
}

output "redrive_policies" {
  value = { for name, queue in aws_sqs_queue.this : name => jsondecode(queue.redrive_policy) }
}
