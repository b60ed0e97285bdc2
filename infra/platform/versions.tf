terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
      # CloudFront's web ACL (with its logs' key and alarm topic) lives in us-east-1,
      # whatever the platform's region: each environment passes that provider.
      # Backup copies, the replicated books and the database's point-in-time
      # backups live in a second region (aws.dr), which each environment names.
      configuration_aliases = [aws.us_east_1, aws.dr]
    }
  }
}

