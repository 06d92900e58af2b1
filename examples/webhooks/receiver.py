#!/usr/bin/env python3
"""A govledger webhook receiver that verifies every delivery.

    pip install standardwebhooks
    python3 examples/webhooks/receiver.py --secret whsec_... --port 9000

Each delivery is checked with the Standard Webhooks reference library
(signature over `webhook-id.webhook-timestamp.body`, timestamp within five
minutes); one that fails is answered 401 and not acted on. Deliveries are at
least once: a `webhook-id` seen before is a duplicate and is acknowledged
again without acting twice.

Options for trying govledger's failure handling:
  --fail-for SECONDS   answer 500 for that long after starting, then 200
  --retry-after SECS   while failing, answer 503 with `Retry-After: SECS` instead
  --delay SECONDS      wait that long before answering (a slow receiver)
  --answer STATUS      answer every verified delivery with STATUS (e.g. 410)
  --log FILE           append one JSON line per delivery (what the tests read)
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secret", action="append", required=True,
                        help="the subscription's secret (whsec_...); repeat it during a rotation")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--fail-for", type=float, default=0.0)
    parser.add_argument("--retry-after", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--answer", type=int, default=200)
    parser.add_argument("--log")
    args = parser.parse_args()

    verifiers = [Webhook(s) for s in args.secret]
    started = time.monotonic()
    seen = set()
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1) if args.log else None

    def act_on(event):
        # Where a real receiver would page someone, open a ticket or post to chat.
        data = event["data"]
        print(f"seq {data['seq']}: {event['type']} {data['subject']} by {data['actor']}", flush=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k: v for k, v in self.headers.items()}
            event, verified = None, False
            for verifier in verifiers:
                try:
                    event = verifier.verify(body, headers)
                    verified = True
                    break
                except WebhookVerificationError:
                    continue
            failing = time.monotonic() - started < args.fail_for
            status = 401 if not verified else 500 if failing else args.answer
            if failing and verified and args.retry_after is not None:
                status = 503
            message_id = headers.get("webhook-id") or headers.get("Webhook-Id")
            with lock:
                duplicate = message_id in seen
                if verified and 200 <= status < 300:
                    seen.add(message_id)
                if log:
                    log.write(json.dumps({
                        "webhook_id": message_id,
                        "verified": verified,
                        "status": status,
                        "duplicate": duplicate,
                        "type": event and event["type"],
                        "seq": event and event["data"]["seq"],
                        "project": event and event["data"]["project"],
                        "data": event and event["data"],
                        "received_at": time.time(),
                    }) + "\n")
            if verified and 200 <= status < 300 and not duplicate:
                act_on(event)
            reply = b"{}" if verified else b'{"error": "bad signature"}'
            time.sleep(args.delay)
            self.send_response(status)
            if status == 503 and args.retry_after is not None:
                self.send_header("retry-after", str(args.retry_after))
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
