"""A minimal wsgate webhook backend: accepts devices, answers "ping" with "pong", fans "alert" out to every device.

Run: HOOK_SECRET=shared python3 examples/webhook_backend.py  (listens on 127.0.0.1:3000)
"""
import hashlib, hmac, json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("HOOK_SECRET", "shared").encode()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        stamp = self.headers.get("X-WSGate-Timestamp", "")
        expected = "t=%s,v1=%s" % (stamp, hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest())
        if not hmac.compare_digest(expected, self.headers.get("X-WSGate-Signature", "")):
            return self.answer(401, "text/plain", b"bad signature")
        event = json.loads(body)
        print(event["type"], event["socket_id"], event.get("message"))
        if event["type"] == "open" and event["parameters"].get("device_id") == "blocked":
            return self.answer(403, "text/plain", b"this device is blocked")
        if event["type"] == "data" and event.get("message") == "ping":
            return self.answer(200, "text/plain", b"pong")
        if event["type"] == "data" and event.get("message") == "alert":
            actions = {"actions": [{"action": "broadcast", "message": "alert from " + event["socket_id"], "groups": ["devices"]}]}
            return self.answer(200, "application/json", json.dumps(actions).encode())
        self.answer(204, "text/plain", b"")

    def answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", 3000), Handler).serve_forever()
