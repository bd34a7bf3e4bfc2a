// Sends one message through SMTP submission with nodemailer, configured from the SMTP URL string
// as an app reads CLOUDMAILIN_SMTP_URL (the test's certificate is self-signed, hence the tls
// option in the URL). Prints nodemailer's result as JSON; exits 1 with the error otherwise.
"use strict";
const nodemailer = require("nodemailer");

const url = process.env.CLOUDMAILIN_SMTP_URL + "&tls.rejectUnauthorized=false";
const transport = nodemailer.createTransport(url);

transport
  .sendMail({
    from: process.env.MAIL_FROM,
    to: process.env.MAIL_TO,
    bcc: process.env.MAIL_BCC,
    subject: "Sent by nodemailer",
    text: "Hello from nodemailer.",
    headers: { "X-CloudMTA-Class": "digest", "X-CloudMTA-Tags": "nodemailer, weekly" },
    attachments: [{ filename: "notes.txt", content: "attached text" }],
  })
  .then((info) => {
    process.stdout.write(JSON.stringify({ response: info.response, envelope: info.envelope }));
  })
  .catch((error) => {
    process.stderr.write(`${error.responseCode || ""} ${error.response || error.message}\n`);
    process.exit(1);
  });
