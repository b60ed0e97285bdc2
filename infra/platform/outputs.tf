output "load_balancer_dns_name" {
  value = aws_lb.this.dns_name
}

output "cloudfront_domain" {
  value = module.storage.cloudfront_domain
}

output "containers" {
  description = "Every container definition, by service and process (api, worker)."
  value       = { for name, service in module.service : name => service.containers }
}

output "task_sizes" {
  value = { for name, service in module.service : name => service.task_sizes }
}

output "task_policies" {
  value = { for name, service in module.service : name => service.task_policy }
}

output "autoscaling" {
  value = { for name, service in module.service : name => service.autoscaling }
}

output "circuit_breakers" {
  value = { for name, service in module.service : name => service.circuit_breakers }
}

output "topic_arns" {
  value = module.messaging.topic_arns
}

output "queue_names" {
  value = module.messaging.queue_names
}

output "redrive_policies" {
  value = module.messaging.redrive_policies
}

output "bucket_names" {
  value = module.storage.bucket_names
}

output "secret_names" {
  value = sort([for secret in aws_secretsmanager_secret.this : secret.name])
}

output "bucket_arns" {
  value = module.storage.bucket_arns
}

output "public_routes" {
  description = "What the public load balancer forwards (by service) and what it refuses."
  value = {
    forwarded = { for name, service in module.service : name => service.public_route }
    refused = {
      priority = aws_lb_listener_rule.internal_only.priority
      paths    = flatten([for c in aws_lb_listener_rule.internal_only.condition : [for p in c.path_pattern : p.values]])
      status   = one(flatten([for a in aws_lb_listener_rule.internal_only.action : [for r in a.fixed_response : r.status_code]]))
    }
  }
}

output "internal_namespace" {
  value = aws_service_discovery_private_dns_namespace.internal.name
}

output "redis_eviction_policy" {
  value = module.data.redis_eviction_policy
}

output "waf" {
  value = {
    api   = module.waf_api.summary
    books = module.storage.web_acl_summary
  }
}

output "load_balancer_arn" {
  value = aws_lb.this.arn
}

output "cloudfront_web_acl" {
  value = module.storage.web_acl_id
}

output "recovery" {
  description = "Where backups and the DR copies live (the runbook's inputs)."
  value       = module.recovery.summary
}

output "bucket_lifecycle" {
  value = module.storage.lifecycle
}

output "database_backup_retention_days" {
  value = var.db_backup_retention_days
}

output "task_containers" {
  description = "By service and process: every container of the task and its image (the ADOT sidecar among them)."
  value       = { for name, service in module.service : name => service.task_containers }
}

output "task_role_managed_policies" {
  value = { for name, service in module.service : name => service.task_role_managed_policies }
}
