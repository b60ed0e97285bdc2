# The contracts between the code and the infrastructure, on a mocked AWS provider
# (nothing is created). contracts.json is written by the code (`stories
# contracts`) and kept current by tests/platform/test_infra.py.

mock_provider "aws" {
  mock_resource "aws_wafv2_web_acl" {
    defaults = { arn = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/mock/1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/mock/1" }
  }
  mock_resource "aws_lb_listener" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/mock/1/2" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mock/1" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/mock" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/mock" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock" }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:distribution/MOCK" }
  }
  mock_resource "aws_service_discovery_service" {
    defaults = { arn = "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-bucket" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sesv2_email_identity" {
    defaults = { arn = "arn:aws:ses:us-east-1:123456789012:identity/staging.example.org" }
  }
  mock_resource "aws_db_instance" {
    defaults = {
      arn = "arn:aws:rds:us-east-1:123456789012:db:stories-staging"
      master_user_secret = [{
        secret_arn    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-master"
        kms_key_id    = "arn:aws:kms:us-east-1:123456789012:key/mock"
        secret_status = "active"
      }]
    }
  }
}

# CloudFront's web ACL and its logs' key are made in us-east-1.
mock_provider "aws" {
  alias = "us_east_1"
  mock_resource "aws_wafv2_web_acl" {
    defaults = { arn = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/mock-books/1" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/edge" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:edge-alarms" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
}

# Backup copies, the replicated books and the database's PITR: the DR region.
mock_provider "aws" {
  alias = "dr"
  mock_resource "aws_backup_vault" {
    defaults = { arn = "arn:aws:backup:us-west-2:123456789012:backup-vault:stories-staging-backups-dr" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-west-2:123456789012:key/dr" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::stories-staging-published-dr" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-west-2" }
  }
}

variables {
  environment            = "staging"
  availability_zones     = ["us-east-1a", "us-east-1b"]
  image                  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/stories@sha256:0000"
  domain_name            = "api.staging.example.org"
  mail_domain            = "staging.example.org"
  certificate_arn        = "arn:aws:acm:us-east-1:123456789012:certificate/mock"
  cloudfront_public_keys = { k2026 = "-----BEGIN PUBLIC KEY-----\nMOCK\n-----END PUBLIC KEY-----\n" }
  cors_origins           = ["https://staging.example.org"]
  app_min_capacity       = 1
  app_max_capacity       = 3
}

# One apply, every contract asserted on it: each run block applied the whole
# platform again (about 15 s of CPU each); an assert's message names its contract.
run "the_platform_keeps_every_contract_with_the_code" {
  command = apply

  # --- every setting a service reads is set on its tasks ---
  assert {
    condition = alltrue(flatten([
      for name, contract in jsondecode(file("contracts.json")).services : [
        for process in ["api", "worker"] : [
          for key in contract.values :
          contains([for e in output.containers[name][process].environment : e.name], key)
        ]
      ]
    ]))
    error_message = "A plain setting named in contracts.json is missing from a task."
  }

  assert {
    condition = alltrue(flatten([
      for name, contract in jsondecode(file("contracts.json")).services : [
        for process in ["api", "worker"] : [
          for key in contract.secrets :
          contains([for e in output.containers[name][process].secrets : e.name], key)
        ]
      ]
    ]))
    error_message = "A secret named in contracts.json is missing from a task."
  }

  assert {
    condition = alltrue(flatten([
      for name, containers in output.containers : [
        for process, container in containers : [
          for e in container.secrets : startswith(e.valueFrom, "arn:") || length(e.valueFrom) > 0
        ]
      ]
    ]))
    error_message = "Every secret comes from Secrets Manager."
  }

  assert {
    condition = alltrue([
      for name, containers in output.containers :
      containers.api.command[0] == "serve" && containers.worker.command[0] == "worker"
      && containers.api.command[1] == name && containers.worker.command[1] == name
    ])
    error_message = "Each service runs its own API and worker."
  }

  # --- every topic and queue the code names exists with a dlq ---
  assert {
    condition = alltrue([
      for topic in jsondecode(file("contracts.json")).topology.topics :
      contains(keys(output.topic_arns), topic)
    ])
    error_message = "A topic the code publishes to does not exist."
  }

  assert {
    condition = alltrue([
      for queue in jsondecode(file("contracts.json")).topology.queues :
      output.queue_names[queue.name] == "stories-staging-${queue.name}"
      && tonumber(output.redrive_policies[queue.name].maxReceiveCount) == queue.max_receive_count
      && output.redrive_policies[queue.name].deadLetterTargetArn != ""
    ])
    error_message = "A queue the code consumes is missing, or has no DLQ redrive."
  }

  assert {
    condition = alltrue([
      for bucket in jsondecode(file("contracts.json")).topology.buckets :
      output.bucket_names[bucket.name] == "stories-staging-${bucket.name}"
    ])
    error_message = "A bucket the code uses does not exist."
  }

  # --- books are processed by a bigger content worker with scratch space ---
  # Content's worker consumes book.published (its queue and DLQ are checked above
  # with every other) and processes each book in a child allowed 1.5 GiB.
  assert {
    condition     = output.task_sizes.content.worker.memory >= 3072 && output.task_sizes.content.worker.cpu >= 1024
    error_message = "Content's worker has no room for processing a book."
  }

  assert {
    condition     = output.task_sizes.content.api.memory == 2048 && output.task_sizes.delivery.worker.memory == 2048
    error_message = "Only content's worker is sized up."
  }

  assert {
    condition = contains(
      [for q in jsondecode(file("contracts.json")).topology.queues : q.name], "content"
    ) && output.queue_names["content"] == "stories-staging-content"
    error_message = "Content's processing queue is missing."
  }

  # Every container's root is read-only; the check and the processing write their
  # files to /tmp, which must be a volume of the task's own.
  assert {
    condition = alltrue(flatten([
      for name, containers in output.containers : [
        for process, container in containers : [
          container.readonlyRootFilesystem,
          anytrue([for m in container.mountPoints : m.containerPath == "/tmp" && !m.readOnly]),
        ]
      ]
    ]))
    error_message = "A container has no writable /tmp on its read-only root."
  }

  # --- no iam wildcards ---
  # No action with *, no resource "*" (the one exception: PutMetricData, which has
  # no resource-level permission, held to our namespace by a condition), and
  # object wildcards only under a bucket of ours.
  assert {
    condition = alltrue(flatten([
      for name, policy in output.task_policies : [
        for statement in policy.Statement : [
          alltrue([for action in statement.Action : !strcontains(action, "*")]),
          alltrue([
            for resource in statement.Resource :
            resource != "*" ? (
              !strcontains(resource, "*") || anytrue([
                for bucket in values(output.bucket_arns) : startswith(resource, "${bucket}/")
              ])
              ) : (
              join(",", statement.Action) == "cloudwatch:PutMetricData"
              && try(statement.Condition.StringEquals["cloudwatch:namespace"], "") == "Stories/Metrics"
            )
          ]),
        ]
      ]
    ]))
    error_message = "A task role has a wildcard action or resource."
  }

  assert {
    condition     = length(output.task_policies) == 4
    error_message = "One task role per service."
  }

  # --- exports (#41): each service writes its own part, and only access reads them ---
  assert {
    condition = alltrue([
      for name, policy in output.task_policies : anytrue([
        for s in policy.Statement :
        s.Sid == "WriteOwnExportPart" && length(s.Resource) == 1
        && endswith(s.Resource[0], "/*/${name}.json") && join(",", s.Action) == "s3:PutObject"
      ])
    ])
    error_message = "A service cannot write its part of an export, or may write another's."
  }

  assert {
    condition = alltrue([
      for name, policy in output.task_policies :
      anytrue([for s in policy.Statement : s.Sid == "AssembleExports"]) == (name == "access")
    ])
    error_message = "Only access assembles exports."
  }

  # --- mail (#41): access alone sends, from the one address of the SES identity ---
  assert {
    condition = (
      output.mail_identity.domain == "staging.example.org"
      && output.mail_identity.from == "no-reply@staging.example.org"
    )
    error_message = "The mail domain is not an SES identity."
  }

  assert {
    condition = alltrue([
      for name, policy in output.task_policies :
      anytrue([for s in policy.Statement : contains(s.Action, "ses:SendEmail")]) == (name == "access")
    ])
    error_message = "Only access may send mail."
  }

  assert {
    condition = alltrue([
      for s in output.task_policies.access.Statement :
      length(s.Resource) == 1
      && s.Resource[0] == "arn:aws:ses:us-east-1:123456789012:identity/staging.example.org"
      && s.Condition.StringEquals["ses:FromAddress"] == "no-reply@staging.example.org"
      if contains(s.Action, "ses:SendEmail")
    ])
    error_message = "Access sends from its identity's one address only."
  }

  assert {
    condition = alltrue([
      for process in ["api", "worker"] : anytrue([
        for e in output.containers.access[process].environment :
        e.name == "ACCESS_MAIL_TRANSPORT" && e.value == "ses"
      ])
    ])
    error_message = "Access's tasks do not send through SES."
  }

  # --- scaling and rollback ---
  assert {
    condition = alltrue(flatten([
      for name, processes in output.autoscaling : [
        processes.api.min == 1, processes.api.max == 3, processes.worker.max == 3
      ]
    ]))
    error_message = "Autoscaling bounds are the environment's."
  }

  assert {
    condition = alltrue(flatten([
      for name, processes in output.circuit_breakers : [processes.api, processes.worker]
    ]))
    error_message = "Every service rolls back a failed deployment."
  }

  # --- internal paths stay internal ---
  # The public load balancer refuses /v1/decisions and /metrics before it looks
  # at any forwarding rule (a lower number is looked at first)...
  assert {
    condition = (
      output.public_routes.refused.status == "404"
      && contains(output.public_routes.refused.paths, "/v1/decisions*")
      && contains(output.public_routes.refused.paths, "/v1/auth/service-token*")
      && contains(output.public_routes.refused.paths, "/metrics*")
      && alltrue([
        for name, route in output.public_routes.forwarded :
        route.priority > output.public_routes.refused.priority
      ])
    )
    error_message = "The load balancer does not refuse the internal paths first."
  }

  # ...no forwarding rule names them...
  assert {
    condition = alltrue(flatten([
      for name, route in output.public_routes.forwarded : [
        for path in route.paths :
        !startswith(path, "/v1/decisions") && !startswith(path, "/metrics") && !startswith(path, "/readyz")
      ]
    ]))
    error_message = "A public route forwards an internal path."
  }

  # ...and the services call access at its private name, not through the load balancer.
  assert {
    condition = alltrue(flatten([
      for name, containers in output.containers : [
        for process, container in containers : [
          for e in container.environment :
          startswith(e.value, "http://access.${output.internal_namespace}:8000")
          if contains(["ACCESS_URL", "JWKS_URL"], e.name)
        ]
      ]
    ]))
    error_message = "A service calls access through the public load balancer."
  }

  # --- redis never evicts ---
  # An evicted deny-list entry would let a logged-out token work again.
  assert {
    condition     = output.redis_eviction_policy == "noeviction"
    error_message = "Redis may evict keys (deny-list entries, reader sketches)."
  }

  # --- waf in front of the load balancer and the books ---
  assert {
    condition = alltrue([
      for acl in [output.waf.api, output.waf.books] : alltrue([
        for group in [
          "AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
          "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList",
        ] : contains(keys(acl.rules), group)
      ])
    ])
    error_message = "A managed rule group is missing from a web ACL."
  }

  assert {
    condition = (
      output.waf.api.scope == "REGIONAL" && output.waf.books.scope == "CLOUDFRONT"
      && output.waf.api.associated == [output.load_balancer_arn]
      && output.cloudfront_web_acl == "arn:aws:wafv2:us-east-1:123456789012:global/webacl/mock-books/1"
    )
    error_message = "The web ACLs are not attached to the load balancer and the distribution."
  }

  # Per-address rates a school behind one address stays under, and the body limit.
  assert {
    condition = (
      output.waf.api.rate_limits["sign-ins-per-address"] >= 1000
      && output.waf.api.rate_limits["links-per-address"] >= 5000
      && contains(keys(output.waf.api.rules), "body-over-max")
      && contains(keys(output.waf.books.rules), "requests-per-address")
    )
    error_message = "A rate or size rule is missing or too tight for a school."
  }

  assert {
    condition = alltrue([
      for acl in [output.waf.api, output.waf.books] :
      contains(acl.redacted, "authorization") && startswith(acl.log_group, "aws-waf-logs-")
      && length(acl.alarm_topics) == 1
    ])
    error_message = "WAF logs keep the Authorization header, or blocked spikes raise no alarm."
  }

  # --- backups and disaster recovery ---
  # Snapshots daily and weekly, each copied to a vault in the DR region under its key.
  assert {
    condition = (
      output.recovery.dr_region == "us-west-2"
      && toset(keys(output.recovery.backup_rules)) == toset(["daily", "weekly"])
      && alltrue([for rule in values(output.recovery.backup_rules) :
      rule.copies_to == [output.recovery.dr_backup_vault.arn] && rule.delete_after >= 7])
      && output.recovery.dr_backup_vault.kms == "arn:aws:kms:us-west-2:123456789012:key/dr"
      && output.recovery.backup_vault.kms != ""
    )
    error_message = "A backup rule is missing, or its copy does not reach the DR region's vault."
  }

  # The database: in the plan, and its point-in-time backups replicated to the DR region.
  assert {
    condition = (
      length(output.recovery.backed_up) == 1
      && contains(output.recovery.backed_up, output.recovery.dr_database_pitr.source)
      && output.recovery.dr_database_pitr.source == "arn:aws:rds:us-east-1:123456789012:db:stories-staging"
      && output.recovery.dr_database_pitr.days == output.database_backup_retention_days
      && output.database_backup_retention_days >= 7
    )
    error_message = "The database is not backed up, or cannot be restored to a point in time in the DR region."
  }

  # The books: replicated within 15 minutes (the RPO), alarmed when late.
  assert {
    condition = (
      output.recovery.replication["books-to-the-dr-region"].destination == "arn:aws:s3:::stories-staging-published-dr"
      && output.recovery.replication["books-to-the-dr-region"].rtc_minutes == 15
      && toset(output.recovery.alarms) == toset(["NumberOfBackupJobsFailed", "NumberOfCopyJobsFailed", "OperationsMissedThreshold"])
    )
    error_message = "Books are not replicated within 15 minutes, or a failure raises no alarm."
  }

  # Old versions to Glacier and gone after their retention; manuscripts archived, then expired.
  assert {
    condition = (
      output.bucket_lifecycle.published["tier-and-tidy"].old_versions_to == ["GLACIER_IR"]
      && output.bucket_lifecycle.published["tier-and-tidy"].old_versions_expire == [365]
      && output.bucket_lifecycle.uploads["tier-and-tidy"].old_versions_to == ["GLACIER_IR"]
      && output.bucket_lifecycle.uploads["archive-manuscripts"].transitions == ["GLACIER_IR"]
      && output.bucket_lifecycle.uploads["archive-manuscripts"].expires_after_days == [3650]
      && !contains(keys(output.bucket_lifecycle.published), "archive-manuscripts")
    )
    error_message = "A bucket's lifecycle does not archive and expire what it should."
  }

  # --- traces leave through the adot sidecar ---
  # Beside every process, the pinned ADOT collector; the process sends it OTLP on
  # loopback; the task may write to X-Ray.
  assert {
    condition = alltrue(flatten([
      for name, processes in output.task_containers : [
        for process, containers in processes :
        length(containers) == 2
        && startswith(containers["otel-collector"], "public.ecr.aws/aws-observability/aws-otel-collector:v")
      ]
    ]))
    error_message = "A task has no ADOT collector sidecar, or an unpinned one."
  }

  assert {
    condition = alltrue(flatten([
      for name, processes in output.containers : [
        for process, container in processes : [
          contains(container.environment, { name = "TRACING_EXPORTER", value = "otlp" }),
          contains(container.environment, { name = "OTEL_EXPORTER_OTLP_ENDPOINT", value = "http://127.0.0.1:4318" }),
          contains(container.environment, { name = "TRACING_SAMPLE_RATIO", value = "0.05" }),
          contains(container.environment, { name = "TRACING_MAX_TRACES_PER_SECOND", value = "10" }),
        ]
      ]
    ]))
    error_message = "A process does not send its traces to its sidecar."
  }

  assert {
    condition = alltrue([
      for name, policies in output.task_role_managed_policies :
      contains(policies, "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess")
    ])
    error_message = "A task may not write to X-Ray."
  }

  # --- content api is sized for its deep checks ---
  # #37 F6: each check's child may use pdf_check_memory_mib; the task holds the API
  # and pdf_checks_at_once of them, and the API is told the same numbers.
  assert {
    condition = alltrue([
      for process in ["api", "worker"] : contains(
        [for e in output.containers.content[process].environment : "${e.name}=${e.value}"],
        "CONTENT_PDF_CHECKS_AT_ONCE=1"
        ) && contains(
        [for e in output.containers.content[process].environment : "${e.name}=${e.value}"],
        "CONTENT_PDF_CHECK_MEMORY_BYTES=1073741824"
      )
    ])
    error_message = "Content is not told how many checks of how much memory its task holds."
  }

  assert {
    condition     = output.task_sizes.content.api.memory >= 768 + 1 * 1024
    error_message = "Content's API task has no room for its deep checks."
  }
}

run "a_task_too_small_for_its_checks_is_refused" {
  command = plan

  variables {
    pdf_checks_at_once = 2
  }

  expect_failures = [terraform_data.content_api_fits_its_checks]
}

run "logs_kept_past_a_year_are_refused" {
  command = plan

  variables {
    log_retention_days = 400
  }

  expect_failures = [var.log_retention_days]
}
