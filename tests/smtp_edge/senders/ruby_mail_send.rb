# Sends one message through SMTP submission with Ruby's `mail` gem, configured as CloudMailin's
# Rails initializer does from CLOUDMAILIN_SMTP_URL (plus openssl_verify_mode 'none' for the test's
# self-signed certificate). Prints the server's reply to DATA; exits 1 with the error otherwise.
require "mail"
require "uri"

url = URI.parse(ENV.fetch("CLOUDMAILIN_SMTP_URL"))
Mail.defaults do
  delivery_method :smtp,
                  address: url.host,
                  port: url.port,
                  user_name: url.user,
                  password: url.password,
                  authentication: "plain",
                  enable_starttls_auto: true,
                  openssl_verify_mode: "none",
                  return_response: true
end

message = Mail.new do
  from ENV.fetch("MAIL_FROM")
  to ENV.fetch("MAIL_TO")
  bcc ENV.fetch("MAIL_BCC")
  subject "Sent by the mail gem"
  body "Hello from Ruby."
end
message["X-CloudMTA-Tags"] = "ruby"

begin
  response = message.deliver!
  print response.string
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 1
end
