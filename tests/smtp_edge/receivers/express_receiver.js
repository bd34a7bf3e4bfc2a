// A receiving app written the way CloudMailin's documentation shows: an Express handler that
// reads the JSON (Normalized) POST. The tests run it as a real node process on 127.0.0.1 and point
// a forward address at it; it writes what it read to RECEIVER_OUT, so the test can compare.
//
// Beyond the documentation's snippet it checks what a careful receiver checks: HTTP Basic auth
// (credentials put in the target URL) and this service's X-CloudMailin-Signature, both in
// constant time. The `cloudmailin` package has no runtime inbound helper, only the TypeScript
// interface `IncomingMail`, used below as the handler's JSDoc type.
//
// Environment: RECEIVER_OUT (file to write), RECEIVER_USER / RECEIVER_PASSWORD (Basic auth),
// RECEIVER_SECRET_FILE (holds the address's signing secret, which exists only once the address
// that points here was created; read per request). Prints "listening on <port>" once ready.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const express = require("express");
require("cloudmailin"); // the official package; its IncomingMail type (JSDoc below) describes the POST

const out = process.env.RECEIVER_OUT;
const expectedAuth =
  "Basic " +
  Buffer.from(`${process.env.RECEIVER_USER}:${process.env.RECEIVER_PASSWORD}`).toString("base64");
const secretFile = process.env.RECEIVER_SECRET_FILE;

function sameText(a, b) {
  const left = Buffer.from(a || "");
  const right = Buffer.from(b || "");
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

// X-CloudMailin-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
function signatureValid(header, rawBody) {
  const fields = Object.fromEntries(
    String(header || "")
      .split(",")
      .map((pair) => pair.split("=", 2)),
  );
  if (!fields.t || !fields.v1) return false;
  const secret = fs.readFileSync(secretFile, "utf8").trim();
  const expected = crypto
    .createHmac("sha256", secret)
    .update(`${fields.t}.`)
    .update(rawBody)
    .digest("hex");
  return sameText(fields.v1, expected);
}

const app = express();

app.post(
  "/incoming",
  express.json({
    limit: "50mb",
    verify: (req, res, buf) => {
      req.rawBody = buf;
    },
  }),
  (req, res) => {
    if (!sameText(req.get("authorization"), expectedAuth)) {
      res.status(401).type("text/plain").send("Unauthorized");
      return;
    }
    /** @type {import("cloudmailin").IncomingMail} */
    const mail = req.body;
    const attachment = mail.attachments[0];
    const read = {
      to: mail.envelope.to,
      from: mail.envelope.from,
      recipients: mail.envelope.recipients,
      spf: mail.envelope.spf.result,
      subject: mail.headers.subject,
      plain: mail.plain,
      html: mail.html,
      reply_plain: mail.reply_plain,
      attachment_count: mail.attachments.length,
      file_name: attachment.file_name,
      content_type: attachment.content_type,
      size: attachment.size,
      content: Buffer.from(attachment.content, "base64").toString("utf8"),
      signature_valid: signatureValid(req.get("x-cloudmailin-signature"), req.rawBody),
      user_agent: req.get("user-agent"),
    };
    fs.writeFileSync(out, JSON.stringify(read));
    res.status(201).json({ read: true, to: read.to });
  },
);

const server = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
