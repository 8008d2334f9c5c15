#!/usr/bin/env bash
# A seconds-long smoke run of the benchmark harness (issue 6), so that it keeps working: every wsbench mode once,
# with tiny counts, against our servers only (wsgate's echo route; bench-gateway for broadcast), and the C floors
# the runner measures beside them (Benchmarks/floor/). Fails if a run fails, reports a protocol error or measures
# nothing. It asserts no timing.
#
#   scripts/bench-smoke.sh             build in debug mode (or reuse that build), then run
#   scripts/bench-smoke.sh --release   reuse the release binaries of scripts/bench.sh (build them if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

config=debug
[ "${1:-}" = "--release" ] && config=release

log() { printf '\n==> %s\n' "$*" >&2; }

log "building wsgate and the benchmark package ($config)"
# wsgate comes from the benchmark package's path dependency on the main package (one build graph).
cd Benchmarks
for product in wsgate wsbench bench-gateway; do nice -n 19 swift build -c "$config" --product "$product"; done
bin="$(swift build -c "$config" --show-bin-path)"
cd ..
wsgate_bin="$bin/wsgate"

work=$(mktemp -d)
server_pid=""
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

# start PORT COMMAND...: starts a server and waits (at most 30 s) until it listens.
start() {
    local port=$1; shift
    nice -n 19 "$@" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
        sleep 0.2
    done
    echo "server on $port did not start" >&2
    return 1
}

failures=0 passed=0
# verdict NAME KEY LINE: passes if LINE is a JSON report with no error and KEY > 0.
verdict() {
    local name=$1 key=$2 line=$3
    if [ -n "$line" ] && echo "$line" | python3 -c "
import json, sys
row = json.loads(sys.stdin.read())
sys.exit(0 if row.get('errors') == 0 and (row.get('$key') or 0) > 0 else 1)"; then
        echo "ok   $name: $line"
        passed=$((passed + 1))
    else
        echo "FAIL $name: ${line:-no output}"; cat "$work/run.err"
        failures=$((failures + 1))
    fi
}

# check NAME KEY WSBENCH-ARGS...: runs wsbench (at most 60 s) and judges its report.
check() {
    local name=$1 key=$2; shift 2
    local line
    line=$(timeout 60 nice -n 19 "$bin/wsbench" "$@" --json 2>"$work/run.err" | tail -1) || line=""
    verdict "$name" "$key" "$line"
}

port=9310
start "$port" "$wsgate_bin" --config Benchmarks/wsgate-bench.yaml --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:9311 --log-level warning
short=(--port "$port" --duration 0.5 --warmup 0.2)
check "echo binary" messages echo "${short[@]}" --connections 4 --size 64 --in-flight 2 --binary
check "echo text 1 MiB" messages echo "${short[@]}" --connections 2 --size 1048576 --text
check "echo deflate" messages echo "${short[@]}" --connections 2 --size 4096 --text --deflate
check "connect" handshakes_per_second connect "${short[@]}" --loops 2
check "hold" connections hold --port "$port" --connections 50 --server-pid "$server_pid" --hold-seconds 0.5
stop_server

start 9312 "$bin/bench-gateway" --port 9312
check "broadcast" deliveries_per_second broadcast --port 9312 --subscribers 20 --messages 3
stop_server

# The C floors of scripts/bench.sh, built the same way.
cc -O2 -pthread -o "$work/echo-floor" Benchmarks/floor/echo-floor.c
cc -O2 -pthread -o "$work/broadcast-floor" Benchmarks/floor/broadcast-floor.c
start 9313 "$work/echo-floor" --port 9313 --threads 2
check "c-floor connect" handshakes_per_second connect --port 9313 --duration 0.5 --warmup 0.2 --loops 2
check "c-floor echo" messages echo --port 9313 --duration 0.5 --warmup 0.2 --connections 4 --size 64 --in-flight 2 --binary
stop_server
line=$(timeout 60 nice -n 19 "$work/broadcast-floor" --subscribers 20 --messages 3 --threads 2 --port 9314 2>"$work/run.err" \
    | tail -1) || line=""
verdict "c-floor broadcast" deliveries_per_second "$line"

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
