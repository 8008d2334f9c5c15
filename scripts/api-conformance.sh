#!/usr/bin/env bash
# Contract test of the management API: starts the real wsgate (debug build) with a token and a few open
# WebSocket connections, runs schemathesis against its own OpenAPI document (scripts/schemathesis.sh), stops
# everything it started. Exit status is schemathesis's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WSGATE="${WSGATE_BINARY:-$ROOT/.build/debug/wsgate}"
WORK="$(mktemp -d)"
TOKEN="conformance-$RANDOM$RANDOM"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/wsgate.yaml" <<YAML
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: \${API_TOKEN}}
limits: {max_message_size: 64KiB}
# POST /v1/outbound may only reach loopback, and only a few sockets at once.
outbound_defaults: {allowed_hosts: [127.0.0.1, localhost], max_sockets: 8}
routes:
  - path: /echo
    handler: echo
  - path: /chat/{room}
    handler: broadcast
    groups: ["room:{room}"]
YAML
API_TOKEN="$TOKEN" timeout -k 5 900 "$WSGATE" --config "$WORK/wsgate.yaml" --log-level warning > "$WORK/wsgate.out" 2> "$WORK/wsgate.err" &
pids+=($!)
for _ in $(seq 1 100); do
    grep -q "management API on" "$WORK/wsgate.out" 2>/dev/null && break
    sleep 0.1
done
admin=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/wsgate.out" | head -1)
ws_port=$(grep -o 'ws://127.0.0.1:[0-9]*' "$WORK/wsgate.out" | head -1 | cut -d: -f3)
[ -n "$admin" ] && [ -n "$ws_port" ] || { cat "$WORK/wsgate.out" "$WORK/wsgate.err" >&2; echo "api-conformance: wsgate did not start" >&2; exit 1; }

# A few live connections, so that the documented links reach real sockets (closed by the test at will).
python3 - "$ws_port" > "$WORK/holder.log" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
sockets = []
for path in ("/echo", "/chat/a", "/chat/b"):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % path).encode())
    sockets.append(s)
time.sleep(900)
PY
pids+=($!)

SCHEMATHESIS_TIMEOUT="${SCHEMATHESIS_TIMEOUT:-600}" "$ROOT/scripts/schemathesis.sh" "$admin" "$TOKEN"
