"""Provider webhooks: Amazon SES through SNS, Postmark, Mailgun, SendGrid and a generic signed
JSON webhook. Each verifies the provider's signature or credentials before reading anything
else, refuses everything else with a JSON error and nothing changed, and turns what it got into
`MailEvent`s for `service.bounces.policy.record` (the provider's event id is the event key, so
a retried delivery counts once). Routes: `POST /webhooks/{provider}` (routes.py)."""
