"""A local stand-in for PagerDuty's Events API v2: prints every page awfdrs sends, answers 202.

    python3 examples/receiver.py 9099        # then escalation_webhook_url=http://127.0.0.1:9099/v2/enqueue

For trying escalations out (the tour in docs/OPERATIONS.md); standard library only.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Pages(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            page = json.loads(body)
            payload = page.get("payload", {})
            details = payload.get("custom_details", {})
            print(
                f"page {page.get('event_action')} dedup_key={page.get('dedup_key')}: "
                f"{payload.get('summary')} ({len(details.get('requests', []))} request(s))",
                flush=True,
            )
        except (ValueError, AttributeError):
            print(f"not a page: {body[:200]!r}", flush=True)
        answer = json.dumps({"status": "success", "message": "Event processed"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # quiet: the pages say enough
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9099
    print(f"receiving pages on http://127.0.0.1:{port}/v2/enqueue", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Pages).serve_forever()
