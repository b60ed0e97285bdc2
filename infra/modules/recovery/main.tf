terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The disaster-recovery region: backup copies, the replicated books, the
      # database's point-in-time backups.
      configuration_aliases = [aws.dr]
    }
  }
}

# Backups and disaster recovery (seeds: RPO under 15 minutes, RTO under an hour).
#
# - Point in time, in this region: RDS keeps its automated backups and WAL for
#   `db_backup_retention_days` (the data module), restorable to any second.
# - Point in time, in the DR region: RDS replicates those automated backups there
#   (minutes behind), so a lost region still restores to within minutes.
# - Snapshots that outlive both: an AWS Backup plan, daily and weekly, into a vault
#   under its own key, each copied to a vault in the DR region.
# - The published books: replicated to a bucket in the DR region with S3
#   Replication Time Control (99.99 % within 15 minutes), alarmed when late.
# - Redis holds nothing that cannot be rebuilt (limits, caches, sketches): it has
#   no backup, by design.
#
# Every failed backup or copy job, and replication falling behind, alarms.

variable "name" {
  type = string
}

variable "account_id" {
  type = string
}

variable "database_arn" {
  type = string
}

variable "database_backup_retention_days" {
  description = "How far back the DR region's point-in-time restore reaches."
  type        = number
}

variable "published_bucket" {
  description = "The published bucket's name and ARN, replicated to the DR region."
  type        = object({ name = string, arn = string })
}

variable "source_kms_key_arn" {
  description = "The key the published bucket's objects are encrypted with."
  type        = string
}

variable "daily_retention_days" {
  type    = number
  default = 35
}

variable "weekly_retention_days" {
  type    = number
  default = 365
}

variable "alarm_topic_arns" {
  type = list(string)
}

data "aws_region" "dr" {
  provider = aws.dr
}

# --- keys: one per region, so a copy never depends on the region it escapes ------------

resource "aws_kms_key" "backup" {
  description         = "${var.name}: backup vault"
  enable_key_rotation = true
  policy              = local.key_policy
}

resource "aws_kms_key" "dr" {
  provider            = aws.dr
  description         = "${var.name}: DR region (backup copies, replicated books, database backups)"
  enable_key_rotation = true
  policy              = local.key_policy
}

locals {
  key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${var.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "BackupAndReplicationUseIt"
        Effect    = "Allow"
        Principal = { AWS = [aws_iam_role.backup.arn, aws_iam_role.replication.arn] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
      },
    ]
  })
}

# --- AWS Backup: daily and weekly, copied to the DR region --------------------------------

resource "aws_backup_vault" "primary" {
  name        = "${var.name}-backups"
  kms_key_arn = aws_kms_key.backup.arn
}

resource "aws_backup_vault" "dr" {
  provider    = aws.dr
  name        = "${var.name}-backups-dr"
  kms_key_arn = aws_kms_key.dr.arn
}

resource "aws_backup_plan" "this" {
  name = "${var.name}-backups"

  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.primary.name
    schedule          = "cron(0 3 * * ? *)"
    start_window      = 60
    completion_window = 360
    lifecycle {
      delete_after = var.daily_retention_days
    }
    copy_action {
      destination_vault_arn = aws_backup_vault.dr.arn
      lifecycle {
        delete_after = var.daily_retention_days
      }
    }
  }

  rule {
    rule_name         = "weekly"
    target_vault_name = aws_backup_vault.primary.name
    schedule          = "cron(0 4 ? * SUN *)"
    start_window      = 60
    completion_window = 720
    lifecycle {
      cold_storage_after = 30
      delete_after       = var.weekly_retention_days
    }
    copy_action {
      destination_vault_arn = aws_backup_vault.dr.arn
      lifecycle {
        cold_storage_after = 30
        delete_after       = var.weekly_retention_days
      }
    }
  }
}

resource "aws_iam_role" "backup" {
  name = "${var.name}-backup"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "backup.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "backup" {
  for_each = toset([
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
  ])
  role       = aws_iam_role.backup.name
  policy_arn = each.value
}

resource "aws_backup_selection" "database" {
  name         = "${var.name}-database"
  plan_id      = aws_backup_plan.this.id
  iam_role_arn = aws_iam_role.backup.arn
  resources    = [var.database_arn]
}

# --- the database's point-in-time backups, replicated to the DR region --------------------

resource "aws_db_instance_automated_backups_replication" "dr" {
  provider               = aws.dr
  source_db_instance_arn = var.database_arn
  kms_key_id             = aws_kms_key.dr.arn
  retention_period       = var.database_backup_retention_days
}

# --- the published books, replicated to the DR region -------------------------------------

resource "aws_s3_bucket" "published_replica" {
  provider = aws.dr
  bucket   = "${var.published_bucket.name}-dr"
}

resource "aws_s3_bucket_public_access_block" "published_replica" {
  provider                = aws.dr
  bucket                  = aws_s3_bucket.published_replica.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "published_replica" {
  provider = aws.dr
  bucket   = aws_s3_bucket.published_replica.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "published_replica" {
  provider = aws.dr
  bucket   = aws_s3_bucket.published_replica.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.dr.arn
    }
    bucket_key_enabled = true
  }
}

# The replica keeps what the source keeps: replaced versions for a year, then gone.
resource "aws_s3_bucket_lifecycle_configuration" "published_replica" {
  provider = aws.dr
  bucket   = aws_s3_bucket.published_replica.id
  rule {
    id     = "tidy-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "GLACIER_IR"
    }
    noncurrent_version_expiration {
      noncurrent_days = 365
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.published_replica]
}

resource "aws_iam_role" "replication" {
  name = "${var.name}-replication"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "s3.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "replication" {
  name = "replicate-published-books"
  role = aws_iam_role.replication.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
        Resource = var.published_bucket.arn
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
        Resource = "${var.published_bucket.arn}/*"
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
        Resource = "${aws_s3_bucket.published_replica.arn}/*"
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = var.source_kms_key_arn
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.dr.arn
      },
    ]
  })
}

resource "aws_s3_bucket_replication_configuration" "published" {
  role   = aws_iam_role.replication.arn
  bucket = var.published_bucket.name
  rule {
    id     = "books-to-the-dr-region"
    status = "Enabled"
    filter {}
    delete_marker_replication {
      status = "Enabled"
    }
    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }
    destination {
      bucket        = aws_s3_bucket.published_replica.arn
      storage_class = "STANDARD_IA"
      encryption_configuration {
        replica_kms_key_id = aws_kms_key.dr.arn
      }
      # Replication Time Control: the RPO for books, measured and alarmed.
      replication_time {
        status = "Enabled"
        time {
          minutes = 15
        }
      }
      metrics {
        status = "Enabled"
        event_threshold {
          minutes = 15
        }
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.published_replica]
}

# --- alarms: a failed backup or copy, books replicating late ------------------------------

locals {
  backup_failures = {
    backup-job-failed = "NumberOfBackupJobsFailed"
    copy-job-failed   = "NumberOfCopyJobsFailed"
  }
}

resource "aws_cloudwatch_metric_alarm" "backup" {
  for_each            = local.backup_failures
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "An AWS Backup job of ${var.name} failed: the last good restore point is older than planned."
  namespace           = "AWS/Backup"
  metric_name         = each.value
  dimensions          = { BackupVaultName = aws_backup_vault.primary.name }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arns
}

resource "aws_cloudwatch_metric_alarm" "replication_late" {
  alarm_name          = "${var.name}-books-replication-late"
  alarm_description   = "Published books reach the DR region later than 15 minutes (the RPO)."
  namespace           = "AWS/S3"
  metric_name         = "OperationsMissedThreshold"
  dimensions          = { SourceBucket = var.published_bucket.name, DestinationBucket = aws_s3_bucket.published_replica.bucket, RuleId = "books-to-the-dr-region" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arns
}

output "summary" {
  description = "What recovery rests on (for tests and the runbook)."
  value = {
    dr_region       = data.aws_region.dr.name
    backup_vault    = { name = aws_backup_vault.primary.name, kms = aws_backup_vault.primary.kms_key_arn }
    dr_backup_vault = { name = aws_backup_vault.dr.name, arn = aws_backup_vault.dr.arn, kms = aws_backup_vault.dr.kms_key_arn }
    backup_rules = {
      for rule in aws_backup_plan.this.rule : rule.rule_name => {
        schedule     = rule.schedule
        delete_after = one(rule.lifecycle).delete_after
        copies_to    = [for copy in rule.copy_action : copy.destination_vault_arn]
      }
    }
    backed_up         = aws_backup_selection.database.resources
    dr_database_pitr  = { source = aws_db_instance_automated_backups_replication.dr.source_db_instance_arn, days = aws_db_instance_automated_backups_replication.dr.retention_period }
    published_replica = aws_s3_bucket.published_replica.bucket
    replication = {
      for rule in aws_s3_bucket_replication_configuration.published.rule : rule.id => {
        destination = one(rule.destination).bucket
        rtc_minutes = one(one(one(rule.destination).replication_time).time).minutes
      }
    }
    alarms = concat([for alarm in aws_cloudwatch_metric_alarm.backup : alarm.metric_name], [aws_cloudwatch_metric_alarm.replication_late.metric_name])
  }
}
