"""A minimal wsgate webhook backend: accepts devices, answers "ping" with "pong", fans "alert" out to every device.

Run: HOOK_SECRET=shared python3 examples/webhook_backend.py [--port 3000]  (or PORT=3000; listens on 127.0.0.1)

Delivery is at least once: a retried event carries the X-WSGate-Delivery id of its first attempt, and this backend
answers a repeat without acting on it again.
"""
import argparse, collections, hashlib, hmac, json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("HOOK_SECRET", "shared").encode()
# The answers of the latest deliveries, by X-WSGate-Delivery.
ANSWERED = collections.OrderedDict()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        stamp = self.headers.get("X-WSGate-Timestamp", "")
        expected = "t=%s,v1=%s" % (stamp, hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest())
        if not hmac.compare_digest(expected, self.headers.get("X-WSGate-Signature", "")):
            return self.answer(401, "text/plain", b"bad signature")
        delivery = self.headers.get("X-WSGate-Delivery", "")
        if delivery in ANSWERED:
            return self.answer(*ANSWERED[delivery])
        event = json.loads(body)
        print(event["type"], event["socket_id"], event.get("message"), "attempt", self.headers.get("X-WSGate-Attempt"))
        if event["type"] == "open" and event["parameters"].get("device_id") == "blocked":
            return self.answer(403, "text/plain", b"this device is blocked")
        if event["type"] == "data" and event.get("message") == "ping":
            return self.answer(200, "text/plain", b"pong")
        if event["type"] == "data" and event.get("message") == "alert":
            actions = {"actions": [{"action": "broadcast", "message": "alert from " + event["socket_id"], "groups": ["devices"]}]}
            return self.answer(200, "application/json", json.dumps(actions).encode())
        self.answer(204, "text/plain", b"")

    def answer(self, status, content_type, body):
        delivery = self.headers.get("X-WSGate-Delivery")
        if delivery:
            ANSWERED[delivery] = (status, content_type, body)
            while len(ANSWERED) > 10000:
                ANSWERED.popitem(last=False)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


parser = argparse.ArgumentParser(description="A minimal wsgate webhook backend.")
parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")), help="port on 127.0.0.1 (default: $PORT or 3000)")
HTTPServer(("127.0.0.1", parser.parse_args().port), Handler).serve_forever()
