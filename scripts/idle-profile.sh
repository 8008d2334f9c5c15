#!/usr/bin/env bash
# Where an idle connection's memory goes (issue 6, figure 5): runs bench-gateway (release) under the live-allocation
# tracer (Benchmarks/live-allocations), opens N idle connections with wsbench, and prints the allocations still live
# with them open, grouped by call site, in bytes per connection. Not part of the test command.
#
#   scripts/idle-profile.sh                    the gateway (route /feed), 10,000 connections
#   scripts/idle-profile.sh --engine-only      the bare engine (bench-gateway --engine-only)
#   scripts/idle-profile.sh --connections N --frames K
#
# The tracer's own tables inflate the process's RSS; use scripts/bench.sh (figure 5) for the resident size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=() connections=10000 frames=3 port=9480
while [ $# -gt 0 ]; do
    case "$1" in
        --engine-only) mode=(--engine-only) ;;
        --connections) connections=$2; shift ;;
        --frames) frames=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

(cd Benchmarks && for product in wsbench bench-gateway; do nice -n 19 swift build -c release --product "$product"; done)
bin="$(cd Benchmarks && swift build -c release --show-bin-path)"
work=$(mktemp -d)
cc -O2 -shared -fPIC -o "$work/live-allocations.so" Benchmarks/live-allocations/live-allocations.c -ldl

LIVE_ALLOCATIONS_OUT="$work/live.out" LD_PRELOAD="$work/live-allocations.so" \
    "$bin/bench-gateway" --port "$port" "${mode[@]}" > "$work/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
sleep 2
# Warm up (first-use allocations of the process are not per connection), then record while N connections open.
"$bin/wsbench" hold --port "$port" --connections 1000 --server-pid "$server_pid" --hold-seconds 0.5 > /dev/null
sleep 1
kill -USR1 "$server_pid"
"$bin/wsbench" hold --port "$port" --connections "$connections" --server-pid "$server_pid" \
    --connect-concurrency 256 --hold-seconds $((connections / 1000 + 6)) > "$work/hold.json" &
hold_pid=$!
sleep $((connections / 1000 + 4))
kill -USR2 "$server_pid"
wait "$hold_pid"
cp "/proc/$server_pid/maps" "$work/maps"
python3 Benchmarks/live-allocations/report.py "$work/live.out" "$work/maps" "$connections" "$frames"
echo "(files in $work)"
