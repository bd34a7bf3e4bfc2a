"""Background jobs run by RQ: outbound delivery, provisioning calls to Heroku, log shipping."""
