# Mail (#41): parents' consent requests and confirmations, sent by access's worker
# through SES. The domain is an SES identity signed with DKIM (Easy DKIM: publish
# the three CNAMEs of `mail_dkim_tokens` in the domain's DNS, which this stack does
# not hold); access's task role may send from its one address, and nothing else.

resource "aws_sesv2_email_identity" "mail" {
  email_identity = var.mail_domain

  dkim_signing_attributes {
    next_signing_key_length = "RSA_2048_BIT"
  }
}

locals {
  mail_from_address = "no-reply@${var.mail_domain}"

  mail_statements = [{
    sid = "SendConsentMail"
    # SESv2 SendEmail is authorised as ses:SendEmail (simple and raw content alike).
    actions   = ["ses:SendEmail"]
    resources = [aws_sesv2_email_identity.mail.arn]
    condition = { StringEquals = { "ses:FromAddress" = local.mail_from_address } }
  }]
}

output "mail_identity" {
  value = {
    domain      = aws_sesv2_email_identity.mail.email_identity
    dkim_tokens = aws_sesv2_email_identity.mail.dkim_signing_attributes[0].tokens
    from        = local.mail_from_address
  }
}
