#!/usr/bin/env python3
"""Adversarial measurements of a running wsgate daemon, on loopback only, for RELIABILITY.md.

    scripts/reliability.py bomb --port P --pid PID [--inflated-mib 256]
        Sends one permessage-deflate message that inflates to --inflated-mib MiB (a compression bomb: about 1,000
        times smaller on the wire) and expects the connection to close with 1009; reports the daemon's resident
        memory before and its peak (VmHWM) after, so the spike can be compared with max_message_size.

    scripts/reliability.py slowloris --port P [--partial 2000] [--seconds 30] [--wsload PATH]
        Holds --partial connections that send an upgrade request one header line at a time, slower than the
        handshake timeout allows, from 127.0.0.2 upwards (32 per address, the default per-address limit), and
        re-opens each one the daemon closes; meanwhile a real client, already connected from 127.0.0.1, measures
        its echo latency with wsload, and new clients from 127.0.0.1 try to connect. Prints one JSON line.

Every socket is on 127.0.0.0/8; every run stops by itself.
"""
import argparse
import base64
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time
import zlib

from wsframes import close_code, split_frame


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def handshake(port, path="/echo", extensions=None, source=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0) if source else None)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    if " 101 " not in status + " ":
        raise RuntimeError(f"upgrade refused: {status}")
    return sock, head.decode(errors="replace")


def frame(opcode, payload, rsv1=False):
    mask = os.urandom(4)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + mask + apply_mask(payload, mask)


def apply_mask(payload, mask):
    """XORs the payload with the repeated 4-byte mask, as one big integer operation (fast for large payloads)."""
    n = len(payload)
    if n == 0:
        return b""
    key = int.from_bytes((mask * ((n + 3) // 4))[:n], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


def read_close(sock, timeout=30):
    """Reads frames until a close frame; returns its code (None if the connection ended without one)."""
    sock.settimeout(timeout)
    buffer = b""
    while True:
        while (frame := split_frame(buffer)) is not None:
            opcode, payload, used = frame
            buffer = buffer[used:]
            if opcode == 8:
                return close_code(payload), payload[2:].decode(errors="replace")
        chunk = sock.recv(65536)
        if not chunk:
            return None, ""
        buffer += chunk


def bomb(args):
    inflated = args.inflated_mib << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    body = b"".join(compressor.compress(chunk) for _ in range(args.inflated_mib)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    body = body[:-4]
    before = status_kib(args.pid, "VmRSS")
    sock, head = handshake(args.port, args.path, "permessage-deflate")
    if "permessage-deflate" not in head.lower():
        raise RuntimeError("the server did not accept permessage-deflate (compression.enabled: true?)")
    started = time.monotonic()
    sock.sendall(frame(0x2, body, rsv1=True))
    code, reason = read_close(sock)
    elapsed = time.monotonic() - started
    sock.close()
    time.sleep(0.5)
    result = {
        "mode": "bomb", "wire_bytes": len(body), "inflated_bytes": inflated, "ratio": round(inflated / len(body)),
        "close_code": code, "close_reason": reason, "seconds_to_close": round(elapsed, 3),
        "rss_before_kib": before, "rss_after_kib": status_kib(args.pid, "VmRSS"), "rss_peak_kib": status_kib(args.pid, "VmHWM"),
    }
    print(json.dumps(result))
    return 0 if code == 1009 else 1


def slowloris(args):
    per_address = 32
    partial_head = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n").encode()
    selector = selectors.DefaultSelector()
    opened = refused = closed_by_server = 0
    held = {}

    def open_one(index):
        nonlocal opened, refused
        source = f"127.0.0.{2 + index // per_address}"
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((source, 0))
        try:
            sock.connect(("127.0.0.1", args.port))
        except BlockingIOError:
            pass
        opened += 1
        held[sock.fileno()] = (sock, index, 0)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, index)

    # The real client: connected before the attack, measured during it.
    wsload = [args.wsload, "--url", f"ws://127.0.0.1:{args.port}{args.path}", "--mode", "echo", "--connections", "1",
              "--duration", str(args.seconds), "--warmup", "1", "--json", "--src-ips", "127.0.0.1"]
    measuring = subprocess.Popen(wsload, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    for index in range(args.partial):
        open_one(index)
    deadline = time.monotonic() + args.seconds
    next_line = time.monotonic() + 5
    new_ok = new_refused = 0
    next_probe = time.monotonic() + 1
    pending_max = 0
    while time.monotonic() < deadline:
        for key, events in selector.select(timeout=0.2):
            sock = key.fileobj
            _, index, sent = held[sock.fileno()]
            if events & selectors.EVENT_WRITE and sent == 0:
                try:
                    sock.send(partial_head)
                    held[sock.fileno()] = (sock, index, 1)
                    selector.modify(sock, selectors.EVENT_READ, index)
                except OSError:
                    pass
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 429") or data.startswith(b"HTTP/1.1 503"):
                    refused += 1
                else:
                    closed_by_server += 1
                selector.unregister(sock)
                del held[sock.fileno()]
                sock.close()
                open_one(index)
        now = time.monotonic()
        pending_max = max(pending_max, len(held))
        if now >= next_line:
            # One more header line each: too slow to ever finish within the handshake timeout.
            for fd, (sock, index, sent) in list(held.items()):
                if sent:
                    try:
                        sock.send(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
            next_line = now + 5
        if now >= next_probe:
            try:
                probe, _ = handshake(args.port, args.path, source="127.0.0.1")
                probe.close()
                new_ok += 1
            except Exception:
                new_refused += 1
            next_probe = now + 1
    output, _ = measuring.communicate(timeout=args.seconds + 30)
    for sock, _, _ in held.values():
        sock.close()
    real = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    result = {
        "mode": "slowloris", "partial_target": args.partial, "sources": (args.partial + per_address - 1) // per_address,
        "connections_opened": opened, "refused_429_or_503": refused, "closed_by_server": closed_by_server,
        "held_max": pending_max, "new_clients_ok": new_ok, "new_clients_refused": new_refused,
        "echo_p50_micros": real.get("lat_us", {}).get("p50"), "echo_p99_micros": real.get("lat_us", {}).get("p99"),
        "echo_messages_per_second": real.get("msgs_per_s"), "echo_errors": real.get("errors"),
    }
    print(json.dumps(result))
    return 0 if real.get("errors") == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("bomb")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--pid", type=int, required=True)
    b.add_argument("--path", default="/echo")
    b.add_argument("--inflated-mib", type=int, default=256)
    s = sub.add_parser("slowloris")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--path", default="/echo")
    s.add_argument("--partial", type=int, default=2000)
    s.add_argument("--seconds", type=int, default=30)
    s.add_argument("--wsload", default=os.path.join(os.path.dirname(__file__), "../../shared/tools/wsload/wsload"))
    args = parser.parse_args()
    sys.exit(bomb(args) if args.mode == "bomb" else slowloris(args))


if __name__ == "__main__":
    main()
