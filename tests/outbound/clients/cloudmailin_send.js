// The official npm client `cloudmailin` (tests/npm) used as its README shows, against this service.
// Prints one JSON object: what each call returned or the CloudMailinError it threw.
const { MessageClient, Errors } = require("cloudmailin");

const baseURL = process.env.CM_BASE_URL;
const username = process.env.CM_USERNAME;
const from = process.env.CM_FROM;

async function attempt(call) {
  try {
    return { ok: await call() };
  } catch (error) {
    return {
      error: {
        name: error.name,
        isCloudMailinError: error instanceof Errors.CloudMailinError,
        status: error.status,
        message: error.message,
      },
    };
  }
}

async function main() {
  const client = new MessageClient({ username, apiKey: process.env.CM_API_KEY, baseURL });
  const wrongKey = new MessageClient({ username, apiKey: "0".repeat(32), baseURL });
  const message = {
    from: `Shop <${from}>`,
    to: ["ann@example.com", "bo@example.org"],
    cc: "cy@example.com",
    subject: "Your order from the npm client",
    plain: "Thanks for your order!",
    html: '<p>Thanks for your order! <img src="cid:logo"></p>',
    tags: ["orders", "npm"],
    priority: "priority",
    headers: { "X-Order": "42" },
    attachments: [
      { file_name: "receipt.txt", content: Buffer.from("Receipt 42\n").toString("base64"), content_type: "text/plain" },
      { file_name: "logo.png", content: Buffer.from([137, 80, 78, 71]).toString("base64"), content_type: "image/png",
        content_id: "logo" },
    ],
  };
  const raw = {
    from,
    to: "dee@example.net",
    tags: "raw",
    raw: `From: ${from}\r\nTo: dee@example.net\r\nSubject: Raw from the npm client\r\n\r\nHello, raw.\r\n`,
  };
  const results = {
    message: await attempt(() => client.sendMessage(message)),
    raw: await attempt(() => client.sendRawMessage(raw)),
    wrongKey: await attempt(() => wrongKey.sendMessage(message)),
    noBody: await attempt(() => client.sendMessage({ ...message, plain: undefined, html: undefined })),
  };
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
