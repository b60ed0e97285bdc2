variable "environment" {
  description = "staging or production: the only thing that differs between them is these variables."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment is staging or production."
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "availability_zones" {
  type = list(string)
}

variable "image" {
  description = "The platform image (one for every service), by digest."
  type        = string
}

variable "domain_name" {
  description = "Where the platform answers, e.g. api.1001stories.org."
  type        = string
}

variable "mail_domain" {
  description = "The domain mail is sent from (parents' consent, #41), an SES identity, e.g. 1001stories.org."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name."
  type        = string
}

variable "cloudfront_public_keys" {
  description = "Public halves of the delivery service's CloudFront signing keys, by key name."
  type        = map(string)
}

variable "cors_origins" {
  type = list(string)
}

variable "app_min_capacity" {
  type = number
}

variable "app_max_capacity" {
  type = number
}

variable "task_cpu" {
  type    = number
  default = 1024
}

variable "task_memory" {
  type    = number
  default = 2048
}

# Content's worker processes each publication (thumbnails, lite edition, text) in
# a child process allowed 1.5 GiB (CONTENT_PROCESSING_MEMORY_BYTES): its task has
# room for that child beside the worker itself. The README says why a worker
# and not Lambda.
variable "processing_worker_cpu" {
  type    = number
  default = 1024
}

variable "processing_worker_memory" {
  type    = number
  default = 4096
}

# The deep check of each submitted manuscript runs in a child of content's API
# process, allowed this much memory (hostile files reach it): the API task holds
# this many such children beside the API itself, and a precondition refuses a
# task too small for them (main.tf, content_api_fits_its_checks).
variable "pdf_checks_at_once" {
  type    = number
  default = 1
}

variable "pdf_check_memory_mib" {
  type    = number
  default = 1024
}

# What content's API process itself uses at most, measured (RSS under load about
# 250 MiB), with room to spare.
variable "api_process_memory_mib" {
  type    = number
  default = 768
}

variable "nat_per_zone" {
  type    = bool
  default = true
}

variable "db_instance_class" {
  type    = string
  default = "db.r6g.large"
}

variable "db_multi_az" {
  type    = bool
  default = true
}

variable "db_backup_retention_days" {
  type    = number
  default = 30
}

variable "db_deletion_protection" {
  type    = bool
  default = true
}

variable "redis_node_type" {
  type    = string
  default = "cache.t3.medium"
}

variable "redis_replicas" {
  type    = number
  default = 1
}

# The services' logs hold no personal data (README: Privacy), and are kept a year
# at most all the same (#41, the seeds' retention of activity logs).
variable "log_retention_days" {
  type    = number
  default = 365
  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 365
    error_message = "Logs are kept at most 365 days (README: Privacy)."
  }
}

variable "alarm_email" {
  description = "Who hears the alarms (an SNS email subscription); empty for none."
  type        = string
  default     = ""
}

variable "backup_daily_retention_days" {
  description = "Days each daily AWS Backup snapshot (and its DR copy) is kept."
  type        = number
  default     = 35
}

variable "backup_weekly_retention_days" {
  description = "Days each weekly AWS Backup snapshot (and its DR copy) is kept."
  type        = number
  default     = 365
}

variable "manuscript_retention_days" {
  description = "Days a manuscript is kept in the uploads bucket (Glacier Instant Retrieval after 90)."
  type        = number
  default     = 3650
}

variable "tracing_sample_ratio" {
  description = "Share of traces kept (decided where a trace starts, followed downstream and through events): 5 %, X-Ray's own default rate."
  type        = number
  default     = 0.05
}

variable "tracing_max_traces_per_second" {
  description = "At most this many new traces a second in each process (a kept span costs its process about 100 us of CPU): tracing's cost stays flat at the peak."
  type        = number
  default     = 10

  validation {
    condition     = var.tracing_max_traces_per_second > 0
    error_message = "The cap on new traces must be positive."
  }
}

variable "otel_collector_image" {
  description = "The AWS Distro for OpenTelemetry collector, run beside every process (pinned)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}
