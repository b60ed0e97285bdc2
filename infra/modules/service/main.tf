# One platform service on Fargate: its API (behind the load balancer, by path)
# and its worker (outbox relay and queue consumer), from the one image, sharing
# a task role that may touch only what this service owns. Both scale on CPU
# (70 %) between the given bounds and roll back a deployment that fails.

variable "name" {
  description = "The service: access, content, delivery or metrics."
  type        = string
}

variable "prefix" {
  type = string
}

variable "image" {
  type = string
}

variable "cluster_arn" {
  type = string
}

variable "cluster_name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_id" {
  type = string
}

variable "listener_arn" {
  type = string
}

variable "namespace_id" {
  description = "The Cloud Map namespace the API registers its private name in."
  type        = string
}

variable "alb_arn_suffix" {
  type = string
}

variable "path_patterns" {
  type = list(string)
}

variable "listener_priority" {
  type = number
}

variable "cpu" {
  type    = number
  default = 1024
}

variable "memory" {
  type    = number
  default = 2048
}

variable "worker_cpu" {
  description = "The worker's task size, when it differs from the API's (content's processes books)."
  type        = number
  default     = null
}

variable "worker_memory" {
  type    = number
  default = null
}

variable "min_capacity" {
  type = number
}

variable "max_capacity" {
  type = number
}

variable "worker_min_capacity" {
  type    = number
  default = 1
}

variable "environment" {
  description = "Plain settings: name => value."
  type        = map(string)
}

variable "secrets" {
  description = "Secret settings: name => Secrets Manager secret ARN."
  type        = map(string)
}

variable "policy_statements" {
  description = "What the task role may do: only this service's topics, queues, buckets."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    condition = optional(map(map(string)), {})
  }))
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type = number
}

variable "alarm_topic_arns" {
  type    = list(string)
  default = []
}

variable "p95_latency_seconds" {
  type    = number
  default = 0.5
}

variable "otel_collector_image" {
  description = "The ADOT collector image: a sidecar receiving OTLP on loopback, sending to X-Ray."
  type        = string
}

variable "error_rate_percent" {
  type    = number
  default = 1
}

locals {
  full_name = "${var.prefix}${var.name}"
  environment = [
    for key in sort(keys(var.environment)) : { name = key, value = var.environment[key] }
  ]
  secrets = [
    for key in sort(keys(var.secrets)) : { name = key, valueFrom = var.secrets[key] }
  ]
  processes = {
    api = {
      command      = ["serve", var.name, "--host", "0.0.0.0", "--port", "8000"]
      port         = 8000
      health       = "http://127.0.0.1:8000/healthz"
      min_capacity = var.min_capacity
      max_capacity = var.max_capacity
      cpu          = var.cpu
      memory       = var.memory
    }
    worker = {
      command      = ["worker", var.name, "--metrics-host", "0.0.0.0", "--metrics-port", "9100"]
      port         = 9100
      health       = "http://127.0.0.1:9100/metrics"
      min_capacity = var.worker_min_capacity
      max_capacity = var.max_capacity
      cpu          = coalesce(var.worker_cpu, var.cpu)
      memory       = coalesce(var.worker_memory, var.memory)
    }
  }
  containers = {
    for process, p in local.processes : process => {
      name                   = "${var.name}-${process}"
      image                  = var.image
      command                = p.command
      essential              = true
      readonlyRootFilesystem = true
      # The one writable place: the task's own ephemeral storage at /tmp, where a
      # manuscript is checked and a book processed by their child processes.
      mountPoints  = [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
      user         = "10001:10001"
      portMappings = [{ containerPort = p.port, protocol = "tcp" }]
      environment  = concat(local.environment, [{ name = "HEALTHCHECK_URL", value = p.health }])
      secrets      = local.secrets
      healthCheck = {
        command     = ["CMD", "python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]
        interval    = 15
        timeout     = 3
        retries     = 3
        startPeriod = 20
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = process
        }
      }
    }
  }
}

# The AWS Distro for OpenTelemetry collector beside each process: OTLP in on the
# task's loopback (4318), X-Ray out, with its stock ECS configuration. Not
# essential: a collector that dies costs traces, never the service.
locals {
  collector = {
    name                   = "otel-collector"
    image                  = var.otel_collector_image
    command                = ["--config=/etc/ecs/ecs-default-config.yaml"]
    essential              = false
    readonlyRootFilesystem = true
    memoryReservation      = 64
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "otel-collector"
      }
    }
  }
}

data "aws_region" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${local.full_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_iam_role" "execution" {
  name = "${local.full_name}-execution"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# The execution role reads this service's secrets, and no others.
resource "aws_iam_role_policy" "secrets" {
  name = "read-own-secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadOwnSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = sort(distinct(values(var.secrets)))
      },
      {
        Sid      = "DecryptThem"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
      },
    ]
  })
}

resource "aws_iam_role" "task" {
  name = "${local.full_name}-task"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

locals {
  task_policy = {
    Version = "2012-10-17"
    Statement = [
      for s in var.policy_statements : merge(
        { Sid = s.sid, Effect = "Allow", Action = s.actions, Resource = s.resources },
        length(s.condition) > 0 ? { Condition = s.condition } : {}
      )
    ]
  }
}

# The collector sends segments to X-Ray (AWS's managed write-only policy: X-Ray's
# actions have no resource-level permissions).
resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.task.name
  policy_arn = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
}

resource "aws_iam_role_policy" "task" {
  name   = "${var.name}-owns"
  role   = aws_iam_role.task.id
  policy = jsonencode(local.task_policy)
}

resource "aws_ecs_task_definition" "this" {
  for_each                 = local.containers
  family                   = "${local.full_name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.processes[each.key].cpu
  memory                   = local.processes[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode([each.value, local.collector])
  # Scratch space on the task's ephemeral storage (no host path: Fargate's own).
  volume {
    name = "scratch"
  }
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
}

resource "aws_lb_target_group" "api" {
  name        = substr("${local.full_name}-api", 0, 32)
  vpc_id      = var.vpc_id
  port        = 8000
  protocol    = "HTTP"
  target_type = "ip"
  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  deregistration_delay = 30
}

resource "aws_lb_listener_rule" "api" {
  listener_arn = var.listener_arn
  priority     = var.listener_priority
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
  condition {
    path_pattern {
      values = var.path_patterns
    }
  }
}

# <name>.<namespace>: how the other services reach this API without the public
# load balancer (access's decisions and keys are called only this way).
resource "aws_service_discovery_service" "api" {
  name = var.name
  dns_config {
    namespace_id   = var.namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_ecs_service" "this" {
  for_each                           = local.processes
  name                               = "${local.full_name}-${each.key}"
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this[each.key].arn
  desired_count                      = each.value.min_capacity
  launch_type                        = "FARGATE"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = each.key == "api" ? 30 : null

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.key == "api" ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.api.arn
      container_name   = "${var.name}-api"
      container_port   = 8000
    }
  }

  dynamic "service_registries" {
    for_each = each.key == "api" ? [1] : []
    content {
      registry_arn = aws_service_discovery_service.api.arn
    }
  }

  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it
  }
  depends_on = [aws_lb_listener_rule.api]
}

resource "aws_appautoscaling_target" "this" {
  for_each           = local.processes
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min_capacity
  max_capacity       = each.value.max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each           = local.processes
  name               = "${local.full_name}-${each.key}-cpu-70"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = 70
    scale_in_cooldown  = 120
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = "${local.full_name}-5xx-rate"
  alarm_description   = "More than ${var.error_rate_percent} % of ${var.name}'s answers are 5xx."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 3
  threshold           = var.error_rate_percent
  alarm_actions       = var.alarm_topic_arns
  treat_missing_data  = "notBreaching"
  metric_query {
    id          = "rate"
    expression  = "100 * errors / MAX([errors, requests])"
    label       = "5xx %"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      stat        = "Sum"
      period      = 60
      dimensions = {
        LoadBalancer = var.alb_arn_suffix
        TargetGroup  = aws_lb_target_group.api.arn_suffix
      }
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      stat        = "Sum"
      period      = 60
      dimensions = {
        LoadBalancer = var.alb_arn_suffix
        TargetGroup  = aws_lb_target_group.api.arn_suffix
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "p95_latency" {
  alarm_name          = "${local.full_name}-p95-latency"
  alarm_description   = "${var.name}'s p95 response time is above ${var.p95_latency_seconds} s."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.p95_latency_seconds
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = var.alarm_topic_arns
  treat_missing_data  = "notBreaching"
  dimensions = {
    LoadBalancer = var.alb_arn_suffix
    TargetGroup  = aws_lb_target_group.api.arn_suffix
  }
}

output "containers" {
  description = "The container definitions (for the contract tests)."
  value       = local.containers
}

output "public_route" {
  description = "The public load balancer's rule forwarding to this API."
  value = {
    priority = aws_lb_listener_rule.api.priority
    paths    = flatten([for c in aws_lb_listener_rule.api.condition : [for p in c.path_pattern : p.values]])
  }
}

output "task_policy" {
  value = local.task_policy
}

output "autoscaling" {
  value = {
    for process, target in aws_appautoscaling_target.this :
    process => { min = target.min_capacity, max = target.max_capacity }
  }
}

output "circuit_breakers" {
  value = {
    for process, service in aws_ecs_service.this :
    process => service.deployment_circuit_breaker[0].rollback
  }
}

output "task_containers" {
  description = "Per process: the names and images of the task's containers."
  value = {
    for process, definition in aws_ecs_task_definition.this : process => {
      for container in jsondecode(definition.container_definitions) : container.name => container.image
    }
  }
}

output "task_sizes" {
  description = "Per process: the task's CPU units and memory (MiB)."
  value = {
    for process, definition in aws_ecs_task_definition.this :
    process => { cpu = tonumber(definition.cpu), memory = tonumber(definition.memory) }
  }
}

output "task_role_managed_policies" {
  value = [aws_iam_role_policy_attachment.xray.policy_arn]
}
