# The whole platform in one AWS account and region. What each service needs
# (settings, topics, queues, buckets) comes from contracts.json, which the code
# writes (`stories contracts`); tests/contracts.tftest.hcl checks this wiring
# against it, so the code and the infrastructure cannot drift apart silently.

locals {
  contracts = jsondecode(file("${path.module}/contracts.json"))
  prefix    = "stories-${var.environment}-"
  name      = "stories-${var.environment}"
  services  = local.contracts.services
  # The API paths each service answers behind the one load balancer. What is not
  # listed here is not public: /v1/decisions (services ask access directly, at its
  # private name) and /metrics (scraped inside the VPC) never pass the load balancer.
  # The load balancer's path rules come from the code (stories/deployment.py,
  # PUBLIC_ROUTES), which a test checks against every service's routes.
  routes     = local.contracts.routes
  public_url = "https://${var.domain_name}"
  # Paths that only other tasks may call. The load balancer refuses them before
  # any forwarding rule is looked at, so a future route pattern that happens to
  # cover one (say "/v1/*") still cannot expose it.
  internal_paths = local.contracts.internal_paths
  # Tasks reach one another at <service>.<namespace>:8000 (Cloud Map), never
  # through the public load balancer.
  internal_domain = "${local.name}.internal"
  access_internal = "http://access.${local.internal_domain}:8000"
  # The class report (access) and the OPDS feeds' most read group (content) read
  # figures from metrics (#19, #20).
  metrics_internal = "http://metrics.${local.internal_domain}:8000"
}

data "aws_caller_identity" "current" {}

# --- encryption and alarms ----------------------------------------------------------------

resource "aws_kms_key" "platform" {
  description         = "${local.name}: data at rest (buckets, queues, topics, logs, database, secrets)"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "AwsServicesUseIt"
        Effect    = "Allow"
        Principal = { Service = ["logs.${var.region}.amazonaws.com", "sns.amazonaws.com", "sqs.amazonaws.com", "cloudfront.amazonaws.com", "cloudwatch.amazonaws.com"] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.platform.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.prefix}alarms"
  kms_master_key_id = aws_kms_key.platform.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# --- network, event bus, storage, data ----------------------------------------------------

module "network" {
  source             = "../modules/network"
  name               = local.name
  availability_zones = var.availability_zones
  nat_per_zone       = var.nat_per_zone
  log_kms_key_arn    = aws_kms_key.platform.arn
}

module "messaging" {
  source           = "../modules/messaging"
  prefix           = local.prefix
  topology         = local.contracts.topology
  kms_key_arn      = aws_kms_key.platform.arn
  alarm_topic_arns = [aws_sns_topic.alarms.arn]
}

module "storage" {
  source                 = "../modules/storage"
  prefix                 = local.prefix
  buckets                = local.contracts.topology.buckets
  kms_key_arn            = aws_kms_key.platform.arn
  cloudfront_public_keys = var.cloudfront_public_keys
  providers              = { aws = aws, aws.us_east_1 = aws.us_east_1 }
  name                   = local.name
  account_id             = data.aws_caller_identity.current.account_id
  log_retention_days     = var.log_retention_days
  alarm_email            = var.alarm_email

  manuscript_retention_days = var.manuscript_retention_days
}

# --- WAF: in front of the load balancer and of the books' distribution -------------------

module "waf_api" {
  source             = "../modules/waf"
  name               = "${local.name}-api"
  scope              = "REGIONAL"
  associate_with     = aws_lb.this.arn
  kms_key_arn        = aws_kms_key.platform.arn
  log_retention_days = var.log_retention_days
  alarm_topic_arns   = [aws_sns_topic.alarms.arn]
}


resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "The services' tasks: in from the load balancer, out to AWS, the database, Redis"
  vpc_id      = module.network.vpc_id
  ingress {
    description     = "APIs from the load balancer"
    from_port       = 8000
    to_port         = 8000
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
  ingress {
    description = "APIs from the other services (decisions, keys), by their private names"
    from_port   = 8000
    to_port     = 8000
    protocol    = "tcp"
    self        = true
  }
  egress {
    description = "To the other services APIs"
    from_port   = 8000
    to_port     = 8000
    protocol    = "tcp"
    self        = true
  }
  egress {
    description = "AWS APIs over TLS (through NAT)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    description = "PostgreSQL and Redis inside the VPC"
    from_port   = 5432
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = [module.network.vpc_cidr_block]
  }
}

module "data" {
  source                   = "../modules/data"
  name                     = local.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  client_security_group_id = aws_security_group.tasks.id
  kms_key_arn              = aws_kms_key.platform.arn
  db_instance_class        = var.db_instance_class
  db_multi_az              = var.db_multi_az
  db_backup_retention_days = var.db_backup_retention_days
  db_deletion_protection   = var.db_deletion_protection
  redis_node_type          = var.redis_node_type
  redis_replicas           = var.redis_replicas
  alarm_topic_arns         = [aws_sns_topic.alarms.arn]
}

# --- backups and disaster recovery: snapshots, replicas and PITR in a second region -------

module "recovery" {
  source    = "../modules/recovery"
  providers = { aws = aws, aws.dr = aws.dr }

  name                           = local.name
  account_id                     = data.aws_caller_identity.current.account_id
  database_arn                   = module.data.database_arn
  database_backup_retention_days = var.db_backup_retention_days
  published_bucket = {
    name = module.storage.bucket_names["published"]
    arn  = module.storage.bucket_arns["published"]
  }
  source_kms_key_arn    = aws_kms_key.platform.arn
  daily_retention_days  = var.backup_daily_retention_days
  weekly_retention_days = var.backup_weekly_retention_days
  alarm_topic_arns      = [aws_sns_topic.alarms.arn]
}

# --- secrets: every one in Secrets Manager, values set outside Terraform ----------------
# Terraform makes the secret; an operator (or a rotation) puts the value:
#   aws secretsmanager put-secret-value --secret-id stories-production-CONTENT_DATABASE_URL ...
# so no secret value ever sits in Terraform state.

locals {
  secret_names = toset(flatten([for name, s in local.services : s.secrets]))
}

resource "aws_secretsmanager_secret" "this" {
  for_each                = local.secret_names
  name                    = "${local.prefix}${each.key}"
  kms_key_id              = aws_kms_key.platform.arn
  recovery_window_in_days = 30
}

# --- load balancer and cluster ------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "HTTPS from the internet to the load balancer"
  vpc_id      = module.network.vpc_id
  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    description = "To the APIs"
    from_port   = 8000
    to_port     = 8000
    protocol    = "tcp"
    cidr_blocks = [module.network.vpc_cidr_block]
  }
}

resource "aws_lb" "this" {
  name                       = local.name
  load_balancer_type         = "application"
  subnets                    = module.network.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.environment == "production"
  # Below the APIs' keep-alive (75 s, shared/service/runtime.py): the balancer, not the
  # task, closes an idle connection, so none is reused as the task drops it (a 502).
  idle_timeout = 60
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = "{\"title\":\"Not Found\",\"status\":404}"
    }
  }
}

# Internal paths are refused at the door (priority 1 is looked at first).
resource "aws_lb_listener_rule" "internal_only" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 1
  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = "{\"title\":\"Not Found\",\"status\":404}"
    }
  }
  condition {
    path_pattern {
      values = local.internal_paths
    }
  }
}

# The private names the tasks call one another by (access.<name>.internal).
resource "aws_service_discovery_private_dns_namespace" "internal" {
  name        = local.internal_domain
  description = "${local.name}: the services' private names"
  vpc         = module.network.vpc_id
}

resource "aws_ecs_cluster" "this" {
  name = local.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# --- the four services --------------------------------------------------------------------

locals {
  topic_arns  = module.messaging.topic_arns
  queue_arns  = module.messaging.queue_arns
  dlq_arns    = module.messaging.dead_letter_queue_arns
  bucket_arns = module.storage.bucket_arns

  # Plain settings every service may be given; each gets the ones its contract names.
  values = {
    ENVIRONMENT     = var.environment
    LOG_JSON        = "true"
    AWS_REGION      = var.region
    RESOURCE_PREFIX = local.prefix
    REDIS_URL       = module.data.redis_url
    ACCESS_URL      = local.access_internal
    JWKS_URL        = "${local.access_internal}/.well-known/jwks.json"
    CORS_ORIGINS    = jsonencode(var.cors_origins)
    # Only the load balancer (in the VPC's public subnets; tasks accept nothing
    # else) may name the client in X-Forwarded-For.
    TRUSTED_PROXIES                = jsonencode([module.network.vpc_cidr_block])
    CONTENT_PUBLISHED_ASSETS_URL   = "https://${module.storage.cloudfront_domain}"
    CONTENT_PDF_CHECKS_AT_ONCE     = tostring(var.pdf_checks_at_once)
    CONTENT_PDF_CHECK_MEMORY_BYTES = tostring(var.pdf_check_memory_mib * 1048576)
    DELIVERY_SIGNER                = "cloudfront"
    DELIVERY_CLOUDFRONT_DOMAIN     = "https://${module.storage.cloudfront_domain}"
    DELIVERY_LINK_SECONDS          = "300"
    ACCESS_METRICS_URL             = local.metrics_internal
    ACCESS_MAIL_TRANSPORT          = "ses"
    ACCESS_MAIL_FROM               = "1001 Stories <${local.mail_from_address}>"
    ACCESS_PUBLIC_URL              = "https://${var.domain_name}"
    CONTENT_METRICS_URL            = local.metrics_internal
    METRICS_CLOUDWATCH_NAMESPACE   = "Stories/Metrics"
    METRICS_DASHBOARD_LOGIN_URL    = "/v1/auth/login"
    # Traces go to the ADOT collector beside each process (same task, loopback),
    # which sends them to X-Ray.
    TRACING_EXPORTER              = "otlp"
    TRACING_SAMPLE_RATIO          = tostring(var.tracing_sample_ratio)
    TRACING_MAX_TRACES_PER_SECOND = tostring(var.tracing_max_traces_per_second)
    OTEL_EXPORTER_OTLP_ENDPOINT   = "http://127.0.0.1:4318"
  }

  consumer_actions = [
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
  ]
  # What each service's task role may do: its own topic, its own queue (and its
  # DLQ, for dead letters and redrive), the buckets it works with. No wildcards.
  statements = {
    for name, s in local.services : name => concat(
      s.publishes_to == null ? [] : [{
        sid       = "PublishOwnEvents"
        actions   = ["sns:Publish"]
        resources = [local.topic_arns["${s.publishes_to}-events"]]
        condition = {}
      }],
      s.consumes ? [{
        sid       = "ConsumeOwnQueue"
        actions   = local.consumer_actions
        resources = [local.queue_arns[name]]
        condition = {}
        }, {
        sid       = "DeadLetters"
        actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
        resources = [local.dlq_arns[name]]
        condition = {}
      }] : [],
      [{
        sid       = "UseThePlatformKey"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [aws_kms_key.platform.arn]
        condition = {}
      }],
      # Each service writes its own part of a person's export (#41), nothing else there.
      [{
        sid       = "WriteOwnExportPart"
        actions   = ["s3:PutObject"]
        resources = ["${local.bucket_arns["exports"]}/*/${name}.json"]
        condition = {}
      }],
      lookup(local.service_statements, name, []),
    )
  }
  service_statements = {
    access = concat(local.mail_statements, [
      {
        # Access assembles each export from the parts, offers it, and removes it.
        sid       = "AssembleExports"
        actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        resources = ["${local.bucket_arns["exports"]}/*"]
        condition = {}
      },
      {
        sid       = "ListExportParts"
        actions   = ["s3:ListBucket"]
        resources = [local.bucket_arns["exports"]]
        condition = {}
      },
    ])
    content = [
      {
        sid       = "Manuscripts"
        actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
        resources = ["${local.bucket_arns["uploads"]}/*"]
        condition = {}
      },
      {
        sid       = "PublishBooks"
        actions   = ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"]
        resources = ["${local.bucket_arns["published"]}/books/*", "${local.bucket_arns["published"]}/covers/*"]
        condition = {}
      },
    ]
    delivery = [{
      sid       = "SignLinksToBooks"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = ["${local.bucket_arns["published"]}/books/*"]
      condition = {}
    }]
    metrics = [{
      # PutMetricData has no resource-level permission: the one accepted "*",
      # held to our namespace by its condition key.
      sid       = "ExportFigures"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]
      condition = { StringEquals = { "cloudwatch:namespace" = "Stories/Metrics" } }
    }]
  }
}

# Content's API task must hold its process and every deep check it lets run at once
# (CONTENT_PDF_CHECKS_AT_ONCE children of CONTENT_PDF_CHECK_MEMORY_BYTES each).
resource "terraform_data" "content_api_fits_its_checks" {
  input = var.pdf_checks_at_once * var.pdf_check_memory_mib + var.api_process_memory_mib

  lifecycle {
    precondition {
      condition     = var.task_memory >= var.api_process_memory_mib + var.pdf_checks_at_once * var.pdf_check_memory_mib
      error_message = "task_memory is too small for content's API and its pdf_checks_at_once deep checks of pdf_check_memory_mib each."
    }
  }
}

module "service" {
  source   = "../modules/service"
  for_each = local.services

  name                 = each.key
  prefix               = local.prefix
  image                = var.image
  cluster_arn          = aws_ecs_cluster.this.arn
  cluster_name         = aws_ecs_cluster.this.name
  vpc_id               = module.network.vpc_id
  subnet_ids           = module.network.private_subnet_ids
  security_group_id    = aws_security_group.tasks.id
  listener_arn         = aws_lb_listener.https.arn
  namespace_id         = aws_service_discovery_private_dns_namespace.internal.id
  alb_arn_suffix       = aws_lb.this.arn_suffix
  path_patterns        = local.routes[each.key].paths
  listener_priority    = local.routes[each.key].priority
  cpu                  = var.task_cpu
  memory               = var.task_memory
  worker_cpu           = each.key == "content" ? var.processing_worker_cpu : null
  worker_memory        = each.key == "content" ? var.processing_worker_memory : null
  min_capacity         = var.app_min_capacity
  max_capacity         = var.app_max_capacity
  kms_key_arn          = aws_kms_key.platform.arn
  log_retention_days   = var.log_retention_days
  otel_collector_image = var.otel_collector_image
  alarm_topic_arns     = [aws_sns_topic.alarms.arn]

  environment = merge(
    { for key in each.value.values : key => local.values[key] if key != "EVENTS_TOPIC_ARN" },
    each.value.publishes_to == null ? {} : {
      EVENTS_TOPIC_ARN = local.topic_arns["${each.value.publishes_to}-events"]
    },
  )
  secrets           = { for key in each.value.secrets : key => aws_secretsmanager_secret.this[key].arn }
  policy_statements = local.statements[each.key]
}
