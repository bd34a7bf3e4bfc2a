"""A demo receiving MX for `make run`: outbound mail is relayed here (OUTBOUND_SMARTHOST) instead
of the internet, which this machine cannot reach, and each message is printed as one line.
"""

from __future__ import annotations

import sys
import threading
from email.parser import BytesHeaderParser
from email.policy import default

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class PrintingMx:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        headers = BytesHeaderParser(policy=default).parsebytes(envelope.original_content or b"")
        signed = "DKIM-signed" if headers.get("DKIM-Signature") else "unsigned"
        print(
            f"demo MX: from={envelope.mail_from!r} to={envelope.rcpt_tos!r} "
            f"subject={headers.get('subject')!r} {len(envelope.original_content or b'')} bytes, {signed}",
            flush=True,
        )
        return "250 2.0.0 Accepted by the demo MX"


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5300
    controller = Controller(PrintingMx(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"demo MX listening on 127.0.0.1:{port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
