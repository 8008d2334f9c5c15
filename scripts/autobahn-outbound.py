#!/usr/bin/env python3
"""Drive Autobahn's fuzzingserver through wsgate's outbound sockets.

Usage: autobahn-outbound.py --fuzzingserver HOST:PORT --admin http://HOST:PORT --agent NAME
                            [--case-timeout SECONDS] [--max-size SIZE]

Asks the fuzzingserver for its case count (/getCaseCount), then for each case N opens
an outbound socket through the management API (POST /v1/outbound, handler echo, no
reconnection, permessage-deflate offered) to /runCase?case=N&agent=NAME and polls
GET /v1/connections/{id} until it answers 404 (the case ended and the socket is gone).
Last it opens /updateReports?agent=NAME so that wstest writes the reports.

Exit status: 0 if every case was opened (201) and ended in time; 1 if any was refused
or timed out (reports are still requested); 2 if the fuzzingserver or the management
API could not be reached.
"""
import argparse
import base64
import http.client
import json
import os
import socket
import struct
import sys
import time
import urllib.parse


def log(*args):
    print(*args, flush=True)


# ---- a minimal WebSocket client for the fuzzingserver's control URLs ---------------

def ws_control(host, port, path, timeout):
    """Opens ws://host:port/path, returns the text messages received until the server
    closes, and answers the close. Enough for /getCaseCount and /updateReports."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("connection closed during the handshake of %s" % path)
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            raise OSError("%s: handshake answered %r" % (path, status))

        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed in a frame of %s" % path)
                buf += chunk
            data, buf = buf[:n], buf[n:]
            return data

        messages = []
        while True:
            b0, b1 = need(2)
            opcode, length = b0 & 0x0F, b1 & 0x7F
            if length == 126:
                length = struct.unpack("!H", need(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", need(8))[0]
            payload = need(length)
            if opcode == 0x1:
                messages.append(payload.decode())
            elif opcode == 0x8:
                mask = os.urandom(4)
                body = payload[:2]
                sock.sendall(bytes([0x88, 0x80 | len(body)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(body)))
                return messages
    finally:
        sock.close()


# ---- the management API ----------------------------------------------------------

class Admin:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method, path, body=None, timeout=60):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()


def run_case(admin, base, agent, index, max_size, case_timeout):
    """Runs case `index`; returns None if it ran and ended, else why it failed."""
    socket_id = "autobahn-%d" % index
    body = {
        "socket_id": socket_id,
        "url": "%s/runCase?case=%d&agent=%s" % (base, index, urllib.parse.quote(agent)),
        "handler": "echo",
        "reconnect": {"strategy": "none"},
        "max_message_size": max_size,
        "compression": True,
    }
    status, text = admin.request("POST", "/v1/outbound", body)
    if status != 201:
        return "POST /v1/outbound answered %d: %s" % (status, text.strip())
    end = time.monotonic() + case_timeout
    while True:
        status, text = admin.request("GET", "/v1/connections/" + socket_id)
        if status == 404:
            return None
        if status != 200:
            return "GET /v1/connections/%s answered %d: %s" % (socket_id, status, text.strip())
        if time.monotonic() > end:
            state = json.loads(text).get("state", "?")
            status, _ = admin.request("DELETE", "/v1/connections/" + socket_id)
            return "still registered after %gs (state %s); closed it (DELETE answered %d)" % (case_timeout, state, status)
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fuzzingserver", required=True, help="HOST:PORT of wstest -m fuzzingserver")
    ap.add_argument("--admin", required=True, help="wsgate's management API, http://HOST:PORT")
    ap.add_argument("--agent", required=True, help="agent name in the reports")
    ap.add_argument("--case-timeout", type=float, default=300, help="seconds a case may take (default 300)")
    ap.add_argument("--max-size", default="16MiB", help="max_message_size of each outbound socket")
    args = ap.parse_args()

    host, port = args.fuzzingserver.rsplit(":", 1)
    port = int(port)
    base = "ws://%s:%d" % (host, port)
    admin = Admin(args.admin)
    try:
        count = int(json.loads(ws_control(host, port, "/getCaseCount", 60)[0]))
    except (OSError, ValueError, IndexError) as e:
        log("cannot get the case count from %s: %s" % (base, e))
        return 2
    log("%d case(s); agent %s; outbound sockets through %s" % (count, args.agent, args.admin))

    failed = []
    started = time.monotonic()
    for index in range(1, count + 1):
        t0 = time.monotonic()
        try:
            why = run_case(admin, base, args.agent, index, args.max_size, args.case_timeout)
        except (OSError, http.client.HTTPException) as e:
            log("case %d: management API unreachable: %s" % (index, e))
            return 2
        if why:
            failed.append(index)
            log("case %d: FAILED: %s" % (index, why))
        elif index % 25 == 0 or index == count or time.monotonic() - t0 > 5:
            log("case %d/%d done (%.1fs; %.0fs so far)" % (index, count, time.monotonic() - t0, time.monotonic() - started))

    try:
        ws_control(host, port, "/updateReports?agent=" + urllib.parse.quote(args.agent), 600)
    except OSError as e:
        log("updateReports failed: %s" % e)
        return 2
    if failed:
        log("%d case index(es) failed to run: %s" % (len(failed), " ".join(map(str, failed))))
        return 1
    log("all %d case(s) ran in %.0fs" % (count, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
