"""A webhook receiver for the tests: checks every delivery with the official Standard Webhooks
library (`standardwebhooks`, PyPI) and prints one JSON line per delivery on stdout.

Started with no arguments; prints `LISTENING <port>` once it listens on 127.0.0.1 (an ephemeral
port). The test sets it up with `PUT /_control` and a JSON body:
  {"secret": "whsec_…", "answers": [500, 503, …], "retry_after": "1"}
`answers` are the statuses of the next deliveries, in turn (then 204); with `retry_after`, a
non-2xx answer carries that `Retry-After`. Each delivery prints
  {"id", "timestamp", "type", "data", "verified", "error", "status", "signatures"}.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

STATE = {"secret": None, "answers": [], "retry_after": None}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def do_PUT(self):
        body = self._body()
        if self.path != "/_control":
            self.send_response(404)
            self.end_headers()
            return
        with LOCK:
            STATE.update(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def do_POST(self):
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            secret = STATE["secret"]
            status = STATE["answers"].pop(0) if STATE["answers"] else 204
            retry_after = STATE["retry_after"]
        verified, error, payload = False, None, None
        try:
            payload = Webhook(secret).verify(body, headers)
            verified = True
        except (WebhookVerificationError, Exception) as e:  # noqa: BLE001 - report any failure
            error = f"{type(e).__name__}: {e}"
        if payload is None:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {}
        line = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": len((headers.get("webhook-signature") or "").split(" ")),
            "type": payload.get("type"),
            "data": payload.get("data"),
            "verified": verified,
            "error": error,
            "status": status,
        }
        print(json.dumps(line), flush=True)
        self.send_response(status)
        if retry_after is not None and not 200 <= status < 300:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("content-length", "0")
        self.end_headers()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
