# A web ACL in front of the platform: AWS's managed rule groups (common, known bad
# inputs, SQL injection, IP reputation; anonymous addresses counted only), per-address rate rules where abuse is
# cheap for the caller and costly for us (sign-in, link issuance), a body-size rule
# matching the services' MAX_BODY_BYTES, logs without the Authorization header,
# and an alarm on spikes of blocked requests.
#
# Thresholds are per address over five minutes and sized for a school behind one
# NAT (hundreds of learners on one address); the services keep their own, finer
# limits per account. One module, two scopes: REGIONAL for the load balancer,
# CLOUDFRONT (created in us-east-1) for the distribution of published books.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  type = string
}

variable "scope" {
  description = "REGIONAL (the load balancer) or CLOUDFRONT."
  type        = string
  validation {
    condition     = contains(["REGIONAL", "CLOUDFRONT"], var.scope)
    error_message = "scope is REGIONAL or CLOUDFRONT."
  }
}

variable "associate_with" {
  description = "REGIONAL: the load balancer's ARN. CLOUDFRONT: empty (the distribution names the ACL)."
  type        = string
  default     = ""
}

variable "requests_per_address" {
  description = "Any request, per address, per 5 minutes."
  type        = number
  default     = 20000
}

variable "sign_ins_per_address" {
  description = "POST /v1/auth/login per address per 5 minutes (REGIONAL only)."
  type        = number
  default     = 1500
}

variable "links_per_address" {
  description = "POST /v1/deliveries* per address per 5 minutes (REGIONAL only)."
  type        = number
  default     = 6000
}

variable "kms_key_arn" {
  type = string
}

variable "log_retention_days" {
  type    = number
  default = 90
}

variable "alarm_topic_arns" {
  type    = list(string)
  default = []
}

variable "blocked_requests_alarm" {
  description = "Blocked requests in 5 minutes above which someone should look."
  type        = number
  default     = 2000
}

locals {
  regional = var.scope == "REGIONAL"
  # Content-Length above 1,048,576 (the services' MAX_BODY_BYTES): 8+ digits, or a
  # 7-digit number from 1,048,577 up. WAF cannot read past a body's first bytes,
  # so the declared length is what it can hold to the limit.
  over_max_body = "^(\\d{8,}|[2-9]\\d{6}|1[1-9]\\d{5}|10[5-9]\\d{4}|1049\\d{3}|1048[6-9]\\d{2}|10485[89]\\d|104857[7-9])$"
}

resource "aws_wafv2_web_acl" "this" {
  name        = var.name
  description = "${var.name}: managed rules, per-address rates, body size"
  scope       = var.scope

  default_action {
    allow {}
  }

  custom_response_body {
    key          = "too-many"
    content_type = "APPLICATION_JSON"
    content      = "{\"title\":\"Too many requests\",\"status\":429}"
  }

  custom_response_body {
    key          = "too-large"
    content_type = "APPLICATION_JSON"
    content      = "{\"title\":\"Request body too large\",\"status\":413}"
  }

  rule {
    name     = "body-over-max"
    priority = 1
    action {
      block {
        custom_response {
          response_code            = 413
          custom_response_body_key = "too-large"
        }
      }
    }
    statement {
      regex_match_statement {
        regex_string = local.over_max_body
        field_to_match {
          single_header {
            name = "content-length"
          }
        }
        text_transformation {
          priority = 0
          type     = "NONE"
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-body-over-max"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "requests-per-address"
    priority = 2
    action {
      block {
        custom_response {
          response_code            = 429
          custom_response_body_key = "too-many"
        }
      }
    }
    statement {
      rate_based_statement {
        limit              = var.requests_per_address
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-requests-per-address"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = local.regional ? {
      sign-ins-per-address = { priority = 3, limit = var.sign_ins_per_address, path = "/v1/auth/login" }
      links-per-address    = { priority = 4, limit = var.links_per_address, path = "/v1/deliveries" }
    } : {}
    content {
      name     = rule.key
      priority = rule.value.priority
      action {
        block {
          custom_response {
            response_code            = 429
            custom_response_body_key = "too-many"
          }
        }
      }
      statement {
        rate_based_statement {
          limit              = rule.value.limit
          aggregate_key_type = "IP"
          scope_down_statement {
            byte_match_statement {
              search_string         = rule.value.path
              positional_constraint = "STARTS_WITH"
              field_to_match {
                uri_path {}
              }
              text_transformation {
                priority = 0
                type     = "NONE"
              }
            }
          }
        }
      }
      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name}-${rule.key}"
        sampled_requests_enabled   = true
      }
    }
  }

  # Anonymous addresses (VPNs, Tor, hosting providers) are counted, not blocked:
  # schools and libraries often reach the internet through shared proxies and
  # privacy services, and a child there must still read. The count shows up in
  # the ACL's metrics if that traffic ever turns hostile.
  rule {
    name     = "AWSManagedRulesAnonymousIpList"
    priority = 50
    override_action {
      count {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesAnonymousIpList"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesAmazonIpReputationList"
    priority = 10
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesAmazonIpReputationList"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesCommonRuleSet"
    priority = 20
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"
        # WAF reads a body's first 8 KB only, and a bulk grant is larger: this
        # rule counts; the body-over-max rule above enforces the real limit.
        rule_action_override {
          name = "SizeRestrictions_BODY"
          action_to_use {
            count {}
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesCommonRuleSet"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesKnownBadInputsRuleSet"
    priority = 30
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesKnownBadInputsRuleSet"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesSQLiRuleSet"
    priority = 40
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesSQLiRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesSQLiRuleSet"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count        = local.regional ? 1 : 0
  resource_arn = var.associate_with
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# WAF's own naming rule: its log groups start with aws-waf-logs-.
resource "aws_cloudwatch_log_group" "this" {
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.this.arn]
  # Tokens never reach the logs.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
  redacted_fields {
    single_header {
      name = "cookie"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "blocked" {
  alarm_name          = "${var.name}-blocked-requests"
  alarm_description   = "More than ${var.blocked_requests_alarm} requests blocked in 5 minutes: an attack, or a rule hurting real users."
  namespace           = "AWS/WAFV2"
  metric_name         = "BlockedRequests"
  dimensions          = local.regional ? { WebACL = var.name, Rule = "ALL", Region = data.aws_region.current.name } : { WebACL = var.name, Rule = "ALL" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.blocked_requests_alarm
  comparison_operator = "GreaterThanThreshold"
  alarm_actions       = var.alarm_topic_arns
  treat_missing_data  = "notBreaching"
}

data "aws_region" "current" {}

output "arn" {
  value = aws_wafv2_web_acl.this.arn
}

output "summary" {
  description = "What the contract test checks: every rule, the association, the redaction."
  value = {
    scope        = aws_wafv2_web_acl.this.scope
    rules        = { for r in aws_wafv2_web_acl.this.rule : r.name => r.priority }
    associated   = [for a in aws_wafv2_web_acl_association.this : a.resource_arn]
    redacted     = flatten([for f in aws_wafv2_web_acl_logging_configuration.this.redacted_fields : [for h in f.single_header : h.name]])
    log_group    = aws_cloudwatch_log_group.this.name
    rate_limits  = { for r in aws_wafv2_web_acl.this.rule : r.name => one(flatten([for s in r.statement : [for rb in s.rate_based_statement : rb.limit]])) if length(flatten([for s in r.statement : s.rate_based_statement])) > 0 }
    alarm_topics = aws_cloudwatch_metric_alarm.blocked.alarm_actions
  }
}
