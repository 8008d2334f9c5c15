#!/usr/bin/env python3
"""Helpers of scripts/soak.sh (stdlib only, loopback only). Each subcommand is one role of the soak:

  broadcast  POSTs /v1/broadcast to the groups every --interval s for --duration s over one keep-alive connection;
             any answer but 200 (or a lost connection) is an error. Writes a JSON result (--out).
  slow       --clients raw-socket WebSocket clients of a broadcast route that never read: each opens the socket with a
             small receive buffer, does the handshake, then reads nothing for --hold s (or until a RST) while the
             broadcasts pile up and the daemon gives up on it, then drains for up to --drain s: EOF or RST means the
             daemon closed it (`closed_by_server`, with the close code when the frame made it out: 1008 "slow
             consumer"), still streaming means it did not (`not_closed`); then it reconnects. A refused handshake is
             an error. Writes a JSON result (--out, - for stdout).
  sample     one sample of the daemon as a JSON line: RSS and threads (/proc/PID/status), open descriptors
             (/proc/PID/fd), registry size (GET /healthz "connections"), the latency of GET /healthz over a new
             connection (median of 3), wsgate_event_loop_lag_seconds{loop="max"} when /metrics has it, and a few
             counters.
  verdict    reads a report directory (samples.jsonl and the load results), prints the table, writes samples.csv and
             summary.json, prints the one-line summary and exits 1 on an error or growth.
"""
import argparse
import base64
import http.client
import json
import os
import select
import socket
import sys
import threading
import time

from soak_verdict import cmd_verdict, write_json
from wsframes import close_code, split_frame

LOOPBACK_PREFIX = "127."


def loopback(host):
    if not (host.startswith(LOOPBACK_PREFIX) or host == "localhost"):
        sys.exit(f"soak_clients: {host} is not a loopback address")
    return host


def split_hostport(value):
    host, port = value.rsplit(":", 1)
    return loopback(host), int(port)


# ---------------------------------------------------------------------------------------------------------- broadcast

stopping = False


def stop_on_signal():
    """SIGINT/SIGTERM (the soak stopping early): finish the current step and write the result."""
    import signal

    def handler(signum, frame):
        global stopping
        stopping = True
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_broadcast(args):
    stop_on_signal()
    host, port = split_hostport(args.admin)
    body = json.dumps({"message": "b" * args.size, "groups": args.group}).encode()
    headers = {"Content-Type": "application/json", "Host": f"{host}:{port}"}
    result = {"posts": 0, "ok": 0, "errors": 0, "delivered": 0, "failures": {}, "first_errors": [],
              "max_latency_ms": 0.0}

    def error(text):
        result["errors"] += 1
        if len(result["first_errors"]) < 10:
            result["first_errors"].append(text)

    conn = None
    end = time.monotonic() + args.duration
    next_at = time.monotonic()
    while time.monotonic() < end and not stopping:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += args.interval
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=10)
        started = time.monotonic()
        result["posts"] += 1
        try:
            conn.request("POST", "/v1/broadcast", body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as e:
            error(f"POST /v1/broadcast: {type(e).__name__}: {e}")
            conn.close()
            conn = None
            continue
        result["max_latency_ms"] = max(result["max_latency_ms"], (time.monotonic() - started) * 1000)
        if answer.status != 200:
            error(f"POST /v1/broadcast: {answer.status} {data[:200]!r}")
            continue
        result["ok"] += 1
        reply = json.loads(data)
        result["delivered"] += reply.get("delivered", 0)
        for failure in reply.get("failures", []):
            reason = failure.get("reason", "?")
            result["failures"][reason] = result["failures"].get(reason, 0) + 1
        if answer.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    write_json(args.out, result)
    return 1 if result["errors"] else 0


# --------------------------------------------------------------------------------------------------------------- slow

def closed_by_peer(sock):
    """True once the peer's FIN or RST arrived, without reading the data in front of it (TCP_INFO state)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return True
    # tcpi_state: 1 ESTABLISHED; 8 CLOSE_WAIT (FIN received); 7 CLOSE (RST received)
    return info[0] != 1


def drain(sock, deadline):
    """Reads until EOF, RST or the deadline; returns (close code seen or None, how it ended)."""
    buf = bytearray()
    code = None
    sock.setblocking(False)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return code, "reset"
        if not chunk:
            return code, "eof"
        buf += chunk
        # Whole frames are read, an incomplete tail kept; a close frame with a code gives the code.
        while (frame := split_frame(buf)) is not None:
            opcode, payload, used = frame
            if opcode == 8 and len(payload) >= 2:
                code = close_code(payload)
            del buf[:used]
    return code, "open"


def slow_client(args, host, port, path, stats, lock, end):
    def count(key, value=1):
        with lock:
            stats[key] = stats.get(key, 0) + value

    def error(text):
        with lock:
            stats["errors"] += 1
            if len(stats["first_errors"]) < 10:
                stats["first_errors"].append(text)

    while time.monotonic() < end and not stopping:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few KiB
            sock.settimeout(10)
            sock.connect((host, port))
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          "User-Agent: soak-slow\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:  # byte by byte: nothing past the head is read
                byte = sock.recv(1)
                if not byte:
                    raise ConnectionError("closed during the handshake")
                head += byte
            if not head.startswith(b"HTTP/1.1 101"):
                error(f"handshake refused: {head.splitlines()[0]!r}")
                sock.close()
                time.sleep(1)
                continue
        except OSError as e:
            error(f"connect/handshake: {type(e).__name__}: {e}")
            time.sleep(1)
            continue
        count("connected")
        # Hold without reading until the daemon resets the socket or --hold s pass, then drain: a socket the daemon
        # closed ends in EOF (its FIN waits behind the bytes queued for us), one it kept keeps streaming.
        hold_end = min(end, time.monotonic() + args.hold)
        while time.monotonic() < hold_end and not stopping and not closed_by_peer(sock):
            time.sleep(0.2)
        code, how = drain(sock, time.monotonic() + args.drain)
        if how != "open":
            count("closed_by_server")
            count(f"close_code_{code}" if code is not None else f"closed_without_close_frame_{how}")
        elif time.monotonic() < end and not stopping:
            count("not_closed")
        else:
            count("open_at_end")
        sock.close()


def cmd_slow(args):
    stop_on_signal()
    host, port = split_hostport(args.url.split("//", 1)[1].split("/", 1)[0])
    path = "/" + args.url.split("//", 1)[1].split("/", 1)[1]
    stats = {"errors": 0, "first_errors": [], "connected": 0, "closed_by_server": 0, "not_closed": 0}
    lock = threading.Lock()
    end = time.monotonic() + args.duration
    threads = [threading.Thread(target=slow_client, args=(args, host, port, path, stats, lock, end), daemon=True)
               for _ in range(args.clients)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    write_json(args.out, stats)
    return 1 if stats["errors"] else 0


# ------------------------------------------------------------------------------------------------------------- sample

def http_get(host, port, path, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        started = time.monotonic()
        conn.request("GET", path, headers={"Host": f"{host}:{port}"})
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, data, time.monotonic() - started
    finally:
        conn.close()


def metric(text, name, labels=None):
    """Sum of the samples of `name` (with `labels` a substring of the label set, when given), or None."""
    total = None
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " "):
            continue
        if labels and labels not in rest.split("}")[0]:
            continue
        try:
            value = float(rest.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        total = (total or 0.0) + value
    return total


def cmd_sample(args):
    host, port = split_hostport(args.admin)
    row = {"t": round(args.t, 1), "phase": args.phase, "alive": os.path.exists(f"/proc/{args.pid}")}
    try:
        with open(f"/proc/{args.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        row["rss_mib"] = round(int(status["VmRSS"].split()[0]) / 1024, 1)
        row["threads"] = int(status["Threads"])
        row["fds"] = len(os.listdir(f"/proc/{args.pid}/fd"))
    except (OSError, KeyError, ValueError):
        row["alive"] = False
    latencies = []
    try:
        for _ in range(3):
            code, data, seconds = http_get(host, port, "/healthz")
            latencies.append(seconds)
            if code != 200:
                row["healthz_error"] = f"{code} {data[:100]!r}"
                break
            row["connections"] = json.loads(data)["connections"]
        latencies.sort()
        row["healthz_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
        code, data, _ = http_get(host, port, "/metrics")
        text = data.decode(errors="replace")
        lag = metric(text, "wsgate_event_loop_lag_seconds", 'loop="max"')
        row["lag_ms"] = round(lag * 1000, 2) if lag is not None else None
        row["slow_consumers"] = int(metric(text, "wsgate_slow_consumers_total") or 0)
        row["accept_errors"] = int(metric(text, "wsgate_accept_errors_total") or 0)
        row["opened_total"] = int(metric(text, "wsgate_connections_total", 'result="accepted"') or
                                  metric(text, "wsgate_connections_total") or 0)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        row["healthz_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(row, sort_keys=True), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------------------ verdict

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("broadcast")
    p.add_argument("--admin", required=True)
    p.add_argument("--group", action="append", required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("slow")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--hold", type=float, default=20)
    p.add_argument("--drain", type=float, default=3)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("sample")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--phase", required=True)
    p.add_argument("--t", type=float, required=True)
    p = sub.add_parser("verdict")
    p.add_argument("--dir", required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--warmup", type=float, default=0)
    p.add_argument("--rss-tolerance", type=float, default=0.10)
    p.add_argument("--rss-slack-mib", type=float, default=16)
    p.add_argument("--fd-slack", type=int, default=4)
    p.add_argument("--thread-slack", type=int, default=2)
    p.add_argument("--expect-connections", type=int, default=0)
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--require-slow", action="store_true")
    p.add_argument("--daemon-problem", default="")
    args = parser.parse_args()
    return {"broadcast": cmd_broadcast, "slow": cmd_slow, "sample": cmd_sample, "verdict": cmd_verdict}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
