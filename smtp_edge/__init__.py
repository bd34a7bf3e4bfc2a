"""The SMTP edge: inbound MX and authenticated submission listeners (aiosmtpd)."""
