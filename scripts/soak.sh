#!/usr/bin/env bash
# A bounded soak of the wsgate daemon (hardening issue): every kind of load at once for N minutes, then a check that
# the daemon gave back what the load took.
#
#   scripts/soak.sh --minutes 30                 release build (swift build -c release --product wsgate), 30 minutes
#   scripts/soak.sh --minutes 1 --debug          the debug build (CI's one-minute run: no release build to wait for)
#   scripts/soak.sh --skip-build [--binary PATH] reuse a built wsgate (default: the build's own path)
#   options: --hold N (idle connections held, 500), --readers N (room clients that read, 100), --slow N (room clients
#            that never read, 4), --churn N (connect loops, 8), --echo N (echo connections, 4), --broadcast-size BYTES
#            (32768), --broadcast-interval S (0.1), --settle S (15), --warmup S (baseline sample; default below),
#            --rss-tolerance F (0.10), --rss-slack MIB (default below), --fd-slack N (4), --port P (19400; admin P+90)
#
# The load, all on loopback and all ending by itself after N minutes (each generator also under `timeout`):
#   churn       wsload --mode connect on /echo: loops of connect, handshake, one message echoed, close both ways, as
#               fast as the machine allows, from 127.0.0.1-127.0.0.4 (wsload: ../shared/tools/wsload, built from its
#               source into .build-soak/, since shared/ may be read-only); beside it wsload --mode echo on /echo
#   idle        wsload --mode hold on /echo: --hold connections held open for the whole run (answering pings)
#   broadcast   scripts/soak_clients.py broadcast: POST /v1/broadcast to room:room1 every --broadcast-interval s, while
#               --readers wsload hold connections sit in /chat/room1 reading (and discarding) every message
#   slow        scripts/soak_clients.py slow: --slow clients of /chat/room1 that never read; the daemon must close
#               them (1008 slow consumer, outbound_queue_size 256KiB) and they reconnect at once. On loopback the
#               kernel lets a send buffer grow to ~4 MB (tcp_wmem), so a client that stops reading is found out once
#               about 3 MB are queued for it: at 32 KiB x 10/s, in about 10 s
# The soak config (written to a temp dir) turns the per-address admission limits off
# (max_pending_handshakes_per_address, max_connections_per_address, handshake_rate_per_address): every client here
# comes from 127.0.0.x, and the defaults (32 pending, 256 open, 50/s per address) would refuse the load generator as
# they would refuse a flood from one address; the gateway-wide limits stay on.
#
# Samples every 10 s (once before the load, during it, and once after it stopped and --settle s passed): the daemon's
# RSS and threads (/proc/PID/status), open descriptors (/proc/PID/fd), registry size (GET /healthz "connections"),
# event-loop lag (wsgate_event_loop_lag_seconds{loop="max"} from /metrics when the daemon has it; the latency of
# GET /healthz is always sampled too and is the measure without the gauge), and wsgate_slow_consumers_total.
# Report: reports/soak-DATE/ (samples.jsonl, samples.csv, summary.json, the load generators' results, daemon.log).
#
# Fails (exit 1, with the reasons) on any error of a load generator (wsload's "errors", a broadcast answered other
# than 200, a refused slow-client handshake), the daemon exiting or /healthz failing, error or critical lines in the
# daemon's log, no slow consumer closed at all, or growth once the load stopped and settled:
#   RSS      after <= baseline x (1 + --rss-tolerance) + --rss-slack MiB. The baseline is the first sample after a
#            warm-up of --warmup s under load (default 60 s when N >= 3: it holds what the load needs, so a leak
#            shows as growth past it), or for shorter runs the sample before the load (--warmup 0), where the slack
#            must cover what the load itself takes: --rss-slack defaults to 16 MiB with a warm-up, 32 MiB without;
#   fds      after <= before + --fd-slack (the runtime opens a descriptor or two once, under load: a timerfd is seen);
#            threads after <= before + 2;  registry size after = 0.
# Ends with one line: "soak: N minutes, M connections churned, K broadcasts, ..., PASS" (or FAIL).
set -euo pipefail
caller=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

minutes=1 config=release build=1 binary="" port=19400
hold=500 readers=100 slow=4 churn=8 echo_conns=4 bsize=32768 binterval=0.1 settle=15
warmup="" rss_tolerance=0.10 rss_slack="" fd_slack=4
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=$2; shift ;;
        --debug) config=debug ;;
        --skip-build) build=0 ;;
        --binary) binary=$2; build=0; shift
            case "$binary" in /*) ;; *) binary="$caller/$binary" ;; esac ;;
        --port) port=$2; shift ;;
        --hold) hold=$2; shift ;;
        --readers) readers=$2; shift ;;
        --slow) slow=$2; shift ;;
        --churn) churn=$2; shift ;;
        --echo) echo_conns=$2; shift ;;
        --broadcast-size) bsize=$2; shift ;;
        --broadcast-interval) binterval=$2; shift ;;
        --settle) settle=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --rss-tolerance) rss_tolerance=$2; shift ;;
        --rss-slack) rss_slack=$2; shift ;;
        --fd-slack) fd_slack=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
admin_port=$((port + 90))
duration=$(python3 -c "print(max(10, round($minutes * 60)))")
if [ -z "$warmup" ]; then
    if [ "$duration" -ge 180 ]; then warmup=60; else warmup=0; fi
fi
if [ -z "$rss_slack" ]; then
    if [ "$warmup" != 0 ]; then rss_slack=16; else rss_slack=32; fi
fi

log() { printf '==> %s\n' "$*" >&2; }
fail() { echo "soak: FAIL: $*" >&2; exit 1; }

# --- builds: wsgate (nice 15), wsload from its source
if [ "$build" = 1 ]; then
    log "building wsgate ($config)"
    started=$(date +%s)
    if [ "$config" = release ]; then nice -n 15 swift build -c release --product wsgate
    else nice -n 15 swift build --product wsgate; fi
    log "built in $(( $(date +%s) - started )) s"
fi
if [ -z "$binary" ]; then
    if [ "$config" = release ]; then binary="$(swift build -c release --show-bin-path)/wsgate"
    else binary="$(swift build --show-bin-path)/wsgate"; fi
fi
[ -x "$binary" ] || fail "no wsgate binary at $binary (build it, or drop --skip-build)"

wsload_src="$root/../shared/tools/wsload/wsload.c"
[ -f "$wsload_src" ] || fail "no $wsload_src (the shared load generator)"
mkdir -p .build-soak
wsload=.build-soak/wsload
if [ ! -x "$wsload" ] || [ "$wsload_src" -nt "$wsload" ]; then
    gcc -O2 -g -Wall -Wextra -std=gnu11 -pthread -o "$wsload" "$wsload_src"
fi
wsload="$root/$wsload"
helper="$root/scripts/soak_clients.py"

for p in "$port" "$admin_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fail "port $p is in use (choose another with --port)"; fi
done

out="reports/soak-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
tmp=$(mktemp -d)
daemon_pid="" load_pids=()

cleanup() {
    local pid
    for pid in "${load_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    for pid in "${load_pids[@]}"; do
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$tmp/soak.yaml" <<EOF
listen: 127.0.0.1:$port
admin:
  listen: 127.0.0.1:$admin_port
limits:
  max_pending_handshakes_per_address: off
  max_connections_per_address: off
  handshake_rate_per_address: off
  outbound_queue_size: 256KiB
  slow_consumer: close
log:
  level: warning
  format: json
routes:
  - path: /echo
    handler: echo
  - path: /chat/{room}
    handler: broadcast
    groups: ["room:{room}"]
EOF
cp "$tmp/soak.yaml" "$out/soak.yaml"
"$binary" check --config "$tmp/soak.yaml" >/dev/null

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "starting $binary on 127.0.0.1:$port (admin $admin_port); report in $out"
"$binary" --config "$tmp/soak.yaml" >"$out/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 150); do
    if python3 - "$admin_port" 2>/dev/null <<'PY'
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2).read()
PY
    then break; fi
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$out/daemon.log" >&2; fail "the daemon exited at start"; }
    sleep 0.2
done

t0=$(date +%s.%N)
sample() {  # sample PHASE
    local t
    t=$(python3 -c "import time; print(time.time() - $t0)")
    python3 "$helper" sample --pid "$daemon_pid" --admin "127.0.0.1:$admin_port" --phase "$1" --t "$t" \
        >>"$out/samples.jsonl"
    tail -1 "$out/samples.jsonl" >&2
    # What each descriptor is, before and after the load (to name a leak when the count grows).
    if [ "$1" != load ]; then
        ls -l "/proc/$daemon_pid/fd" 2>/dev/null | awk 'NR > 1 {print $9, $11}' >"$out/fds-$1.txt" || true
    fi
}
daemon_gone() { ! kill -0 "$daemon_pid" 2>/dev/null; }

sleep 2
sample before

# --- the load: every generator ends by itself after $duration s; `timeout` bounds each in case it does not
bound=$((duration + 60))
url="ws://127.0.0.1:$port"
start_load() {  # start_load ROLE COMMAND...: stdout (the JSON result) to load-ROLE.json, stderr to load-ROLE.log
    local role=$1; shift
    timeout --signal=INT --kill-after=10 "$bound" "$@" >"$out/load-$role.json.part" 2>"$out/load-$role.log" &
    load_pids+=($!)
    roles+=("$role")
}
roles=()
log "load for $duration s: churn $churn loops, echo $echo_conns, hold $hold, readers $readers, slow $slow," \
    "broadcast ${bsize} B every ${binterval} s"
start_load hold "$wsload" --url "$url/echo" --mode hold -c "$hold" --duration "$duration" --json
start_load readers "$wsload" --url "$url/chat/room1" --mode hold -c "$readers" --duration "$duration" --json
start_load churn "$wsload" --url "$url/echo" --mode connect -c "$churn" --duration "$duration" --warmup 0 --json \
    --src-ips 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
start_load echo "$wsload" --url "$url/echo" --mode echo -c "$echo_conns" --inflight 4 --duration "$duration" \
    --warmup 0 --json
start_load broadcast python3 "$helper" broadcast --admin "127.0.0.1:$admin_port" --group room:room1 \
    --interval "$binterval" --size "$bsize" --duration "$duration" --out -
start_load slow python3 "$helper" slow --url "$url/chat/room1" --clients "$slow" --duration "$duration" \
    --out -

load_running() {
    local pid
    for pid in "${load_pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}
daemon_exit=""
next=10
while load_running; do
    sleep 1
    if daemon_gone; then
        rc=0; wait "$daemon_pid" || rc=$?
        daemon_exit="exited with status $rc during the load (see $out/daemon.log)"
        daemon_pid=""
        break
    fi
    now=$(python3 -c "print(int(float('$(date +%s.%N)') - $t0))")
    if [ "$now" -ge "$next" ]; then
        sample load
        next=$((next + 10))
    fi
done
if [ -n "$daemon_exit" ]; then
    for pid in "${load_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
fi
i=0
for pid in "${load_pids[@]}"; do
    rc=0; wait "$pid" || rc=$?
    role=${roles[$i]}
    mv "$out/load-$role.json.part" "$out/load-$role.json"
    [ "$rc" -eq 0 ] || log "$role exited with status $rc (see $out/load-$role.log)"
    i=$((i + 1))
done
load_pids=()

if [ -z "$daemon_exit" ]; then
    log "load stopped; settling for $settle s"
    sleep "$settle"
    if daemon_gone; then
        rc=0; wait "$daemon_pid" || rc=$?
        daemon_exit="exited with status $rc after the load"
        daemon_pid=""
    else
        sample after
    fi
fi

# Error and critical lines of the daemon's log (warnings, such as each slow consumer, are expected).
log_errors=$(python3 - "$out/daemon.log" <<'PY'
import json, sys
bad = []
for line in open(sys.argv[1], errors="replace"):
    try:
        level = json.loads(line).get("level")
    except ValueError:
        continue  # the banner
    if level in ("error", "critical"):
        bad.append(line.strip())
print(f"{len(bad)} error/critical lines in daemon.log, first: {bad[0][:300]}" if bad else "")
PY
)
if [ -n "$log_errors" ] && [ -z "$daemon_exit" ]; then daemon_exit=$log_errors; fi

echo
python3 "$helper" verdict --dir "$out" --minutes "$minutes" --warmup "$warmup" --rss-tolerance "$rss_tolerance" \
    --rss-slack-mib "$rss_slack" --fd-slack "$fd_slack" --expect-connections 0 --require-slow \
    --daemon-problem "$daemon_exit" $(printf -- '--expect %s ' "${roles[@]}") | tee "$out/summary.txt"
exit "${PIPESTATUS[0]}"
