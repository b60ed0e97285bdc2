# production: only variables differ from the other environment.

terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
  # backend "s3" { bucket = "stories-terraform-state" key = "production/platform.tfstate" region = "us-east-1" }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { Project = "1001-stories", Environment = "production", ManagedBy = "terraform" }
  }
}

# CloudFront's web ACL must be made in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = { Project = "1001-stories", Environment = "production", ManagedBy = "terraform" }
  }
}

# The disaster-recovery region: backup copies, replicated books, database PITR.
provider "aws" {
  alias  = "dr"
  region = var.dr_region
  default_tags {
    tags = { Project = "1001-stories", Environment = "production", ManagedBy = "terraform" }
  }
}

variable "dr_region" {
  type    = string
  default = "us-west-2"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "image" {
  description = "The platform image by digest (CI sets it)."
  type        = string
}

variable "certificate_arn" {
  type = string
}

variable "cloudfront_public_keys" {
  type = map(string)
}

variable "alarm_email" {
  type    = string
  default = ""
}

module "platform" {
  source    = "../../platform"
  providers = { aws = aws, aws.us_east_1 = aws.us_east_1, aws.dr = aws.dr }

  environment            = "production"
  region                 = var.region
  availability_zones     = ["${var.region}a", "${var.region}b", "${var.region}c"]
  image                  = var.image
  domain_name            = "api.1001stories.org"
  mail_domain            = "1001stories.org"
  certificate_arn        = var.certificate_arn
  cloudfront_public_keys = var.cloudfront_public_keys
  cors_origins           = ["https://1001stories.org"]
  alarm_email            = var.alarm_email

  # Sizes from the platform team's plan (seeds): production bounds.
  app_min_capacity         = 2
  app_max_capacity         = 10
  task_cpu                 = 1024
  task_memory              = 2048
  nat_per_zone             = true
  db_instance_class        = "db.r6g.large"
  db_multi_az              = true
  db_backup_retention_days = 30
  # Snapshots beyond PITR: daily for 5 weeks, weekly for a year (each copied to the DR region).
  backup_daily_retention_days  = 35
  backup_weekly_retention_days = 365
  db_deletion_protection       = true
  redis_node_type              = "cache.t3.medium"
  redis_replicas               = 1
  log_retention_days           = 365
}

output "load_balancer_dns_name" {
  value = module.platform.load_balancer_dns_name
}

output "cloudfront_domain" {
  value = module.platform.cloudfront_domain
}
