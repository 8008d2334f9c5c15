#!/usr/bin/env bash
# Benchmarks wsgate's echo route against its peers (issue 6) and prints the table of BENCHMARKS.md.
#
#   scripts/bench.sh                 full run: 3 repetitions, 10 s measured per scenario (about 45 minutes)
#   scripts/bench.sh --quick         1 repetition, 3 s per scenario, fewer scenarios (about 8 minutes)
#   scripts/bench.sh --reps 5        more repetitions
#   scripts/bench.sh --skip-build    reuse the release binaries already built
#   scripts/bench.sh --threads 2     generator event-loop threads (default 1)
#   scripts/bench.sh --broadcast-only   only figure 6 (bench-gateway and the c-floor row), about 3 minutes
#   scripts/bench.sh --baseline DIR     also runs an earlier build of ours, DIR/wsgate and DIR/bench-gateway, as the rows
#                                       wsgate-before and bench-gateway-before (a change's before and after in one run)
#   scripts/bench.sh --echo-broadcast   only 64 B echo (1 and 8 in flight) and broadcast, with the peers and floors
#
# Builds everything in release mode, installs Debian's node-ws if missing, then for each repetition runs every
# server in turn (the order rotates per repetition) under identical load from wsbench, one server at a time:
#   wsgate        our daemon, Benchmarks/wsgate-bench.yaml (the embedded /echo route with 16 MiB limits)
#   hummingbird   hummingbird-websocket 2.8.1           (peer-hummingbird)
#   hummingbird-deflate   the same with its permessage-deflate (only the deflate scenario)
#   websocketkit  vapor websocket-kit 2.16.2 on NIO      (peer-websocketkit)
#   node-ws       Node's ws module from Debian's node-ws (Benchmarks/peers/node-ws-echo.js)
#   bench-gateway our gateway library with /feed and /publish (broadcast only: no peer has a broadcast route)
#   c-floor       floors measured on this machine, no peers (Benchmarks/floor/): for 64 B x 1 and handshakes, a minimal C epoll
#                 WebSocket echo server; for broadcast, a C sender and a C epoll receiver with no WebSocket code
# Results go to reports/bench-DATE/results.jsonl and table.md; the table is printed at the end.
# Everything runs under `nice -n 19` on loopback (127.0.0.1, connections spread over 127.0.0.1–127.0.0.4), and
# every server is stopped by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

reps=3 duration=10 warmup=2 quick=0 build=1 threads=1 broadcast_only=0 baseline="" echo_broadcast=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 reps=1 duration=3 warmup=1 ;;
        --reps) reps=$2; shift ;;
        --duration) duration=$2; shift ;;
        --skip-build) build=0 ;;
        --threads) threads=$2; shift ;;
        --broadcast-only) broadcast_only=1 ;;
        --baseline) baseline=$(cd "$2" && pwd); shift ;;
        --echo-broadcast) echo_broadcast=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '\n==> %s\n' "$*" >&2; }

# The hold scenario needs 19,000 client and 19,000 server descriptors (one process each).
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 20000 ]; then echo "warning: descriptor limit $(ulimit -n) < 20000; hold-19000 will fail" >&2; fi

if ! node -e "require('/usr/share/nodejs/ws')" 2>/dev/null && ! node -e "require('ws')" 2>/dev/null; then
    log "installing node-ws (Debian package)"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq node-ws
fi

if [ "$build" = 1 ]; then
    # wsgate is built as a product of the benchmark package's path dependency on the main package: the same
    # sources, one build graph (a cold release build of the NIO stack takes long enough once).
    log "building the benchmark package and wsgate (release)"
    (cd Benchmarks && nice -n 19 swift build -c release && nice -n 19 swift build -c release --product wsgate)
fi
bin="$(cd Benchmarks && swift build -c release --show-bin-path)"
wsgate_bin="$bin/wsgate"
wsbench="$bin/wsbench"
baseline_bins=()
[ -z "$baseline" ] || baseline_bins=("$baseline/wsgate" "$baseline/bench-gateway")
for binary in "$wsgate_bin" "$wsbench" "$bin/peer-hummingbird" "$bin/peer-websocketkit" "$bin/bench-gateway" "${baseline_bins[@]}"; do
    [ -x "$binary" ] || { echo "missing $binary (run without --skip-build)" >&2; exit 1; }
done
mkdir -p Benchmarks/.build
malloc_counter="$root/Benchmarks/.build/malloc-counter.so"
cc -O2 -shared -fPIC -o "$malloc_counter" Benchmarks/malloc-counter/malloc-counter.c
broadcast_floor="$root/Benchmarks/.build/broadcast-floor"
cc -O2 -pthread -o "$broadcast_floor" Benchmarks/floor/broadcast-floor.c
echo_floor="$root/Benchmarks/.build/echo-floor"
cc -O2 -pthread -o "$echo_floor" Benchmarks/floor/echo-floor.c

out="reports/bench-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

server_pid=""
server_port=0
# start_server NAME [ENV...]: starts a server at nice 19 and waits until its port accepts connections.
start_server() {
    local name=$1; shift
    case "$name" in
        wsgate) server_port=9300
            cmd=("$wsgate_bin" --config Benchmarks/wsgate-bench.yaml --listen 127.0.0.1:9300 --admin-listen 127.0.0.1:9390 --log-level warning) ;;
        wsgate-before) server_port=9306
            cmd=("$baseline/wsgate" --config Benchmarks/wsgate-bench.yaml --listen 127.0.0.1:9306 --admin-listen 127.0.0.1:9396 --log-level warning) ;;
        bench-gateway-before) server_port=9307; cmd=("$baseline/bench-gateway" --port 9307) ;;
        hummingbird) server_port=9301; cmd=("$bin/peer-hummingbird" 9301) ;;
        hummingbird-deflate) server_port=9301; cmd=("$bin/peer-hummingbird" 9301 --deflate) ;;
        websocketkit) server_port=9302; cmd=("$bin/peer-websocketkit" 9302) ;;
        node-ws) server_port=9303; cmd=(node Benchmarks/peers/node-ws-echo.js 9303) ;;
        bench-gateway) server_port=9304; cmd=("$bin/bench-gateway" --port 9304) ;;
        c-floor) server_port=9305; cmd=("$echo_floor" --port 9305 --threads "$(nproc)") ;;
    esac
    env "$@" nice -n 19 "${cmd[@]}" >>"$out/server-$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$server_port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || { echo "server $name exited; see $out/server-$name.log" >&2; return 1; }
        sleep 0.2
    done
    echo "server $name did not listen on $server_port" >&2
    return 1
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    sleep 1  # let the kernel release the port and the closed connections
}
trap stop_server EXIT

# record SERVER SCENARIO REP LINE: tags one JSON report line and appends it to the results (a failure row if empty).
record() {
    local server=$1 scenario=$2 rep=$3 line=$4
    if [ -n "$line" ]; then
        echo "$line" | python3 -c "
import json, sys
row = json.loads(sys.stdin.read())
row.update(server='$server', scenario='$scenario', rep=$rep)
print(json.dumps(row, sort_keys=True))" | tee -a "$results" >&2
    else
        echo "{\"server\":\"$server\",\"scenario\":\"$scenario\",\"rep\":$rep,\"errors\":1,\"error_kinds\":{\"$server failed\":1}}" | tee -a "$results" >&2
    fi
}

# run SERVER SCENARIO REP MODE ARGS...: one wsbench run, its JSON line tagged and appended to the results.
run() {
    local server=$1 scenario=$2 rep=$3 mode=$4; shift 4
    local line
    log "rep $rep  $server  $scenario"
    line=$(timeout 600 nice -n 19 "$wsbench" "$mode" --port "$server_port" --threads "$threads" --label "$server" --json "$@" \
        2>>"$out/wsbench.log" | tail -1) || line=""
    record "$server" "$scenario" "$rep" "$line"
}

# run_floor SCENARIO REP SUBSCRIBERS: the broadcast floor of this machine (Benchmarks/floor/broadcast-floor.c: a C
# sender with one thread per core and a C epoll receiver, no WebSocket code), the row "c-floor" of the table.
run_floor() {
    local scenario=$1 rep=$2 subscribers=$3
    local line
    log "rep $rep  c-floor  $scenario"
    line=$(timeout 300 nice -n 19 "$broadcast_floor" --subscribers "$subscribers" --messages "$broadcast_messages" --threads "$(nproc)" \
        --port 9305 2>>"$out/wsbench.log" | tail -1) || line=""
    record c-floor "$scenario" "$rep" "$line"
}

timing=(--duration "$duration" --warmup "$warmup")
# Messages per broadcast run (ours and the floor's), one at a time.
broadcast_messages=20
echo_scenarios() {
    local server=$1 rep=$2
    run "$server" echo-64-c100-f1 "$rep" echo --connections 100 --size 64 --in-flight 1 --binary "${timing[@]}"
    run "$server" echo-64-c100-f8 "$rep" echo --connections 100 --size 64 --in-flight 8 --binary "${timing[@]}"
    [ "$echo_broadcast" = 0 ] || return 0
    run "$server" echo-16k-c100 "$rep" echo --connections 100 --size 16384 --in-flight 1 --binary "${timing[@]}"
    run "$server" echo-1m-c10 "$rep" echo --connections 10 --size 1048576 --in-flight 1 --binary "${timing[@]}"
    if [ "$quick" = 0 ]; then
        run "$server" echo-16k-c10 "$rep" echo --connections 10 --size 16384 --in-flight 1 --binary "${timing[@]}"
        run "$server" echo-1m-c100 "$rep" echo --connections 100 --size 1048576 --in-flight 1 --binary "${timing[@]}"
    fi
    run "$server" connect-l10 "$rep" connect --loops 10 "${timing[@]}"
}

hold_scenarios() {
    local server=$1 rep=$2
    for count in 10000 19000; do
        start_server "$server"
        run "$server" "hold-$count" "$rep" hold --connections "$count" --server-pid "$server_pid" --connect-concurrency 256
        stop_server
    done
}

# alloc SERVER REP: allocations per echoed message in the server, by the LD_PRELOADed malloc counter.
alloc_scenarios() {
    local server=$1 rep=$2 count_file="$out/malloc-count"
    for spec in "alloc-64-c100-f8:--size 64 --in-flight 8" "alloc-16k-c100:--size 16384 --in-flight 1"; do
        local scenario=${spec%%:*} args=${spec#*:}
        start_server "$server" LD_PRELOAD="$malloc_counter" MALLOC_COUNTER_FILE="$count_file"
        rm -f "$count_file"; kill -USR2 "$server_pid"; sleep 0.3
        local before; before=$(cat "$count_file" 2>/dev/null || echo 0)
        # shellcheck disable=SC2086
        local line; line=$(timeout 120 nice -n 19 "$wsbench" echo --port "$server_port" --threads "$threads" --label "$server" --json \
            --connections 100 --binary $args --duration "$duration" --warmup 1 2>>"$out/wsbench.log" | tail -1) || line=""
        rm -f "$count_file"; kill -USR2 "$server_pid"; sleep 0.3
        local after; after=$(cat "$count_file" 2>/dev/null || echo 0)
        stop_server
        [ -n "$line" ] || continue
        echo "$line" | python3 -c "
import json, sys
row = json.loads(sys.stdin.read())
total = row.get('messages_total') or 0
row.update(server='$server', scenario='$scenario', rep=$rep, allocations=$after - $before,
           allocations_per_message=round(($after - $before) / total, 2) if total else None)
print(json.dumps(row, sort_keys=True))" | tee -a "$results" >&2
    done
}

servers=(wsgate hummingbird websocketkit node-ws)
[ -z "$baseline" ] || servers=(wsgate wsgate-before hummingbird websocketkit node-ws)
log "results in $out (reps $reps, ${duration}s per scenario, generator threads $threads)"
for rep in $(seq 1 "$reps"); do
    # Rotate the order so no server always runs first (or always on a warm machine).
    n=${#servers[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${servers[$(((i + rep - 1) % n))]}"); done
    if [ "$broadcast_only" = 1 ]; then order=(); fi
    for server in "${order[@]}"; do
        start_server "$server"
        echo_scenarios "$server" "$rep"
        if [ "$server" = wsgate ] && [ "$echo_broadcast" = 0 ]; then
            run wsgate deflate-4k-c100 "$rep" echo --connections 100 --size 4096 --in-flight 1 --text --deflate "${timing[@]}"
        fi
        stop_server
        [ "$echo_broadcast" = 0 ] || continue
        if [ "$server" = hummingbird ]; then
            start_server hummingbird-deflate
            run hummingbird-deflate deflate-4k-c100 "$rep" echo --connections 100 --size 4096 --in-flight 1 --text --deflate "${timing[@]}"
            stop_server
        fi
        hold_scenarios "$server" "$rep"
        if [ "$server" != node-ws ] && [ "$server" != wsgate-before ]; then alloc_scenarios "$server" "$rep"; fi
    done
    if [ "$broadcast_only" = 0 ]; then
        # The machine's floor for the small-message echo and the handshake figure's ceiling with this generator:
        # a C server whose own cost is almost nothing.
        start_server c-floor
        run c-floor echo-64-c100-f1 "$rep" echo --connections 100 --size 64 --in-flight 1 --binary "${timing[@]}"
        [ "$echo_broadcast" = 1 ] || run c-floor connect-l10 "$rep" connect --loops 10 "${timing[@]}"
        stop_server
    fi
    for subscribers in 1000 10000; do
        start_server bench-gateway
        run bench-gateway "broadcast-$subscribers" "$rep" broadcast --subscribers "$subscribers" \
            --messages "$broadcast_messages" --connect-concurrency 256
        stop_server
        if [ -n "$baseline" ]; then
            start_server bench-gateway-before
            run bench-gateway-before "broadcast-$subscribers" "$rep" broadcast --subscribers "$subscribers" \
                --messages "$broadcast_messages" --connect-concurrency 256
            stop_server
        fi
        run_floor "broadcast-$subscribers" "$rep" "$subscribers"
    done
done

python3 Benchmarks/tools/bench_table.py "$results" | tee "$out/table.md"
{
    echo
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
    echo "run: scripts/bench.sh $([ "$quick" = 1 ] && echo --quick) $([ "$echo_broadcast" = 1 ] && echo --echo-broadcast) $([ -n "$baseline" ] && echo "--baseline $baseline") (reps $reps, ${duration}s measured after ${warmup}s warm-up, generator threads $threads)"
} | tee -a "$out/table.md"
