terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # CloudFront's web ACL (and its logs' key and alarm topic) live in us-east-1.
      configuration_aliases = [aws.us_east_1]
    }
  }
}

# The uploads, published and exports buckets (names from the code's plan), encrypted,
# versioned, never public, tiered as they age; CloudFront in front of the
# published bucket through origin access control, trusting only the key group
# whose private keys the delivery service signs links with.

variable "prefix" {
  type = string
}

variable "buckets" {
  description = "The `topology.buckets` part of contracts.json."
  type        = list(object({ name = string, versioned = bool }))
}

variable "kms_key_arn" {
  type = string
}

variable "cloudfront_public_keys" {
  description = "PEM public keys of the delivery service's signing keys (several while rotating)."
  type        = map(string)
}

variable "name" {
  type = string
}

variable "account_id" {
  type = string
}

variable "log_retention_days" {
  type = number
}

variable "alarm_email" {
  type    = string
  default = ""
}

variable "old_version_retention_days" {
  description = "Days an object's replaced versions are kept, per bucket."
  type        = map(number)
  default     = { published = 365, uploads = 90, exports = 1 }
}

variable "manuscript_archive_days" {
  type    = number
  default = 90
}

variable "manuscript_retention_days" {
  type    = number
  default = 3650
}

variable "export_retention_days" {
  description = "Days anything in the exports bucket is kept at most (ACCESS_EXPORT_DAYS is the same)."
  type        = number
  default     = 7
}

variable "price_class" {
  type    = string
  default = "PriceClass_All"
}

locals {
  buckets = { for bucket in var.buckets : bucket.name => bucket }
}

resource "aws_s3_bucket" "this" {
  for_each = local.buckets
  bucket   = "${var.prefix}${each.key}"
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

# Every bucket is versioned: the published one because links bind an object
# version (the code requires it), the uploads one so a manuscript is never lost.
resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  # Books being read stay where S3 tiers them by use; old versions (a book's
  # earlier editions, replaced manuscripts) go to Glacier Instant Retrieval
  # after 30 days and are gone after `old_version_retention_days`.
  rule {
    id     = "tier-and-tidy"
    status = "Enabled"
    filter {}
    dynamic "transition" {
      for_each = each.key == "published" ? [1] : []
      content {
        days          = 30
        storage_class = "INTELLIGENT_TIERING"
      }
    }
    noncurrent_version_transition {
      noncurrent_days = 30
      storage_class   = "GLACIER_IR"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.old_version_retention_days[each.key]
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  # Manuscripts (the uploads bucket) are read once, when checked and published:
  # Glacier Instant Retrieval after `manuscript_archive_days` (still copied at
  # once if a new edition is published), gone after `manuscript_retention_days`.
  dynamic "rule" {
    for_each = each.key == "uploads" ? [1] : []
    content {
      id     = "archive-manuscripts"
      status = "Enabled"
      filter {}
      transition {
        days          = var.manuscript_archive_days
        storage_class = "GLACIER_IR"
      }
      expiration {
        days = var.manuscript_retention_days
      }
    }
  }
  # A person's data export (#41) is offered for 7 days; access's worker removes it
  # then, and this removes anything left (a part written after an erasure, say).
  dynamic "rule" {
    for_each = each.key == "exports" ? [1] : []
    content {
      id     = "exports-for-a-week"
      status = "Enabled"
      filter {}
      expiration {
        days = var.export_retention_days
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_cloudfront_origin_access_control" "published" {
  name                              = "${var.prefix}published"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_public_key" "signing" {
  for_each    = var.cloudfront_public_keys
  name        = "${var.prefix}${each.key}"
  encoded_key = each.value
}

resource "aws_cloudfront_key_group" "signing" {
  name  = "${var.prefix}readers"
  items = [for key in aws_cloudfront_public_key.signing : key.id]
}

# Signed links carry versionId: it must reach S3 and be part of the cache key.
resource "aws_cloudfront_cache_policy" "published" {
  name        = "${var.prefix}published"
  default_ttl = 86400
  max_ttl     = 31536000
  min_ttl     = 0
  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_brotli = true
    enable_accept_encoding_gzip   = true
    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "whitelist"
      query_strings {
        items = ["versionId"]
      }
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "published" {
  name = "${var.prefix}published"
  security_headers_config {
    content_type_options {
      override = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
  }
}

resource "aws_cloudfront_distribution" "published" {
  enabled         = true
  comment         = "${var.prefix}published books (signed URLs and cookies only)"
  price_class     = var.price_class
  http_version    = "http2and3"
  is_ipv6_enabled = true
  web_acl_id      = module.waf_books.arn

  origin {
    origin_id                = "published"
    domain_name              = aws_s3_bucket.this["published"].bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.published.id
  }

  default_cache_behavior {
    target_origin_id           = "published"
    viewer_protocol_policy     = "https-only"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.published.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.published.id
    trusted_key_groups         = [aws_cloudfront_key_group.signing.id]
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
    minimum_protocol_version       = "TLSv1.2_2021"
  }
}

resource "aws_s3_bucket_policy" "published" {
  bucket = aws_s3_bucket.this["published"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudFrontReadsThroughOriginAccessControl"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = ["s3:GetObject", "s3:GetObjectVersion"]
        Resource  = "${aws_s3_bucket.this["published"].arn}/books/*"
        Condition = { StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.published.arn } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.this["published"].arn, "${aws_s3_bucket.this["published"].arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.this]
}

output "bucket_arns" {
  value = { for name, bucket in aws_s3_bucket.this : name => bucket.arn }
}

output "bucket_names" {
  value = { for name, bucket in aws_s3_bucket.this : name => bucket.bucket }
}

output "cloudfront_domain" {
  value = aws_cloudfront_distribution.published.domain_name
}

output "key_group_id" {
  value = aws_cloudfront_key_group.signing.id
}

output "web_acl_id" {
  value = aws_cloudfront_distribution.published.web_acl_id
}

# --- WAF in front of the distribution ---------------------------------------------------

# CloudFront's ACL, its logs and their key live in us-east-1.
resource "aws_kms_key" "edge" {
  provider            = aws.us_east_1
  description         = "${var.name}: the CloudFront web ACL's logs (us-east-1)"
  enable_key_rotation = true
  policy = jsonencode({
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
        Sid       = "LogsAndAlarmsUseIt"
        Effect    = "Allow"
        Principal = { Service = ["logs.us-east-1.amazonaws.com", "sns.amazonaws.com", "cloudwatch.amazonaws.com"] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
      },
    ]
  })
}

module "waf_books" {
  source             = "../waf"
  providers          = { aws = aws.us_east_1 }
  name               = "${var.name}-books"
  scope              = "CLOUDFRONT"
  kms_key_arn        = aws_kms_key.edge.arn
  log_retention_days = var.log_retention_days
  # Signed-URL fetches only; a reader paging through a book makes a few a minute.
  requests_per_address = 20000
  alarm_topic_arns     = [aws_sns_topic.edge_alarms.arn]
}

# An alarm can only notify a topic of its own region.
resource "aws_sns_topic" "edge_alarms" {
  provider          = aws.us_east_1
  name              = "${var.prefix}edge-alarms"
  kms_master_key_id = aws_kms_key.edge.arn
}

resource "aws_sns_topic_subscription" "edge_alarm_email" {
  provider  = aws.us_east_1
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.edge_alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

output "web_acl_summary" {
  value = module.waf_books.summary
}

output "lifecycle" {
  description = "Per bucket: the storage class each kind of object moves to, and when it expires."
  value = {
    for name, config in aws_s3_bucket_lifecycle_configuration.this : name => {
      for rule in config.rule : rule.id => {
        transitions         = [for t in rule.transition : t.storage_class]
        old_versions_to     = [for t in rule.noncurrent_version_transition : t.storage_class]
        old_versions_expire = [for e in rule.noncurrent_version_expiration : e.noncurrent_days]
        expires_after_days  = [for e in rule.expiration : e.days]
      }
    }
  }
}
