#!/usr/bin/env bash
# Run the Autobahn|TestSuite conformance suites against our autobahn-peer and against the
# daemon's outbound sockets.
#
# Usage: scripts/autobahn.sh [all|server|client|outbound] [--cases '1.*,2.*'] [--exclude '9.*,12.*']
#   server    wstest fuzzingclient against `autobahn-peer server` (our server side)
#   client    `autobahn-peer client` against wstest fuzzingserver (our client side)
#   outbound  the daemon's outbound sockets (handler echo, one opened per case through
#             POST /v1/outbound) against wstest fuzzingserver, agent wsgate-outbound;
#             driven by scripts/autobahn-outbound.py
#   all       server and client side by side (default); --cases defaults to '*'
#
# Environment:
#   AUTOBAHN_PEER     peer executable (default <repo>/.build/debug/autobahn-peer)
#   WSGATE_BINARY     daemon executable for outbound (default <repo>/.build/debug/wsgate)
#   AUTOBAHN_AGENT    agent name in the server and client reports (default WebSocketGateway)
#   AUTOBAHN_TIMEOUT  per-suite timeout in seconds (default 2400); a timeout is a failure
#   AUTOBAHN_CASE_TIMEOUT  outbound: seconds one case may take (default 300); longer fails it
#   AUTOBAHN_REPORTS  report root (default <repo>/.build-autobahn/reports): servers/, clients/, outbound/
#   AUTOBAHN_WORK     specs and logs (default <repo>/.build-autobahn/work): server/, client/, outbound/
#   AUTOBAHN_VENV     wstest virtualenv, see scripts/autobahn-install.sh
#
# Exit status is non-zero if any suite failed, timed out, or had a case that is not
# OK/INFORMATIONAL (see scripts/autobahn-report.py).
# shellcheck disable=SC2317  # suite functions are called indirectly ("suite_$s")
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SCRIPTS")"

usage() { sed -n '2,/^$/{/shellcheck/d; s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
die() { echo "autobahn: $*" >&2; exit 2; }
abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

MODE=all CASES='*' EXCLUDE=''
while [ $# -gt 0 ]; do
    case "$1" in
        all|server|client|outbound) MODE=$1 ;;
        --cases) [ $# -ge 2 ] || die "--cases needs a value"; CASES=$2; shift ;;
        --cases=*) CASES=${1#*=} ;;
        --exclude) [ $# -ge 2 ] || die "--exclude needs a value"; EXCLUDE=$2; shift ;;
        --exclude=*) EXCLUDE=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ "$MODE" = all ] && SUITES="server client" || SUITES=$MODE

AGENT="${AUTOBAHN_AGENT:-WebSocketGateway}"
declare -A OUTDIR=([server]=servers [client]=clients [outbound]=outbound)
declare -A SUITE_AGENT=([server]="$AGENT" [client]="$AGENT" [outbound]=wsgate-outbound)
TIMEOUT="${AUTOBAHN_TIMEOUT:-2400}"
CASE_TIMEOUT="${AUTOBAHN_CASE_TIMEOUT:-300}"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "AUTOBAHN_TIMEOUT must be a positive number of seconds"
[[ "$CASE_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "AUTOBAHN_CASE_TIMEOUT must be a positive number of seconds"

# executable PATH HINT: PATH made absolute (suites cd elsewhere), or die with HINT.
executable() {
    [ -f "$1" ] && [ -x "$1" ] || die "executable not found: $1 ($2)"
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}
PEER="" WSGATE=""
if [ "$MODE" = outbound ]; then
    WSGATE="$(executable "${WSGATE_BINARY:-$ROOT/.build/debug/wsgate}" "swift build --product wsgate, or set WSGATE_BINARY")"
else
    PEER="$(executable "${AUTOBAHN_PEER:-$ROOT/.build/debug/autobahn-peer}" \
        "swift build --product autobahn-peer, or set AUTOBAHN_PEER")"
fi
REPORTS="$(abspath "${AUTOBAHN_REPORTS:-$ROOT/.build-autobahn/reports}")"
WORK="$(abspath "${AUTOBAHN_WORK:-$ROOT/.build-autobahn/work}")"

WSTEST="$("$SCRIPTS/autobahn-install.sh")"
VENV_PY="$(dirname "$WSTEST")/python"

# wstest's listeners bind to all interfaces (autobahn's listenWS uses interface='');
# this launcher runs wstest with every TCP listener forced onto 127.0.0.1.
# (Python 2 code: it runs in the Autobahn venv.)
LOOPBACK_WSTEST='import sys
import autobahntestsuite.choosereactor
from twisted.internet import reactor
_listenTCP = reactor.listenTCP
def listenTCP(port, factory, backlog=50, interface=""):
    return _listenTCP(port, factory, backlog, interface or "127.0.0.1")
reactor.listenTCP = listenTCP
from autobahntestsuite.wstest import run
sys.argv[0] = "wstest"
sys.exit(run())'

# Distinct free loopback ports (one per suite), below the Linux ephemeral range (32768+)
# so an outgoing connection cannot grab them between now and the bind.
SERVER_PORT="" CLIENT_PORT="" OUTBOUND_PORT=""
read -r SERVER_PORT CLIENT_PORT OUTBOUND_PORT < <(python3 -c '
import random, socket
ports, held = [], []
for _ in range(1000):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    if p not in ports:
        ports.append(p); held.append(s)
    if len(ports) == 3:
        break
print(*ports)') || true
[ -n "${OUTBOUND_PORT:-}" ] || die "could not find free loopback ports"

# write_spec fuzzingclient|fuzzingserver FILE URL OUTDIR
write_spec() {
    python3 - "$@" "$AGENT" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
mode, path, url, outdir, agent, cases, exclude = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(",") if c.strip()]
spec = {"outdir": outdir, "cases": split(cases), "exclude-cases": split(exclude),
        "exclude-agent-cases": {}}
if mode == "fuzzingclient":
    spec["servers"] = [{"agent": agent, "url": url}]
else:
    spec["url"] = url
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
}

# ---- helpers used inside a suite's subshell --------------------------------------
say() { echo "[$SUITE] $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# start_bg LOG CMD...: background process, bounded by timeout as a safety net.
# Its PID is timeout's; TERM to it is forwarded to the whole command (process group),
# with SIGKILL 10s later if that is ignored.
start_bg() {
    local log=$1; shift
    timeout -k 10 $((TIMEOUT + 60)) "$@" >"$log" 2>&1 </dev/null &
    BG_PIDS="$BG_PIDS $!"
    LAST_PID=$!
}

# run_fg LOG CMD...: run until the suite deadline. Started in the background and
# waited for, so a TERM to the suite is handled at once (traps wait for foreground jobs).
run_fg() {
    local log=$1 left=$((DEADLINE - SECONDS)); shift
    [ "$left" -gt 0 ] || return 124
    timeout -k 10 "$left" "$@" >"$log" 2>&1 </dev/null &
    FG_PID=$!
    local rc=0
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return "$rc"
}

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wait_port PORT PID SECONDS: until 127.0.0.1:PORT accepts TCP; fails early if PID exits.
wait_port() {
    local port=$1 pid=$2 end=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$end" ]; do
        kill -0 "$pid" 2>/dev/null || { say "process $pid exited before listening"; return 1; }
        timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0
        sleep 0.2
    done
    say "nothing accepted connections on 127.0.0.1:$port within $3s"
    return 1
}

suite_setup() {  # suite_setup NAME
    SUITE=$1 OUT="$REPORTS/${OUTDIR[$1]}" DIR="$WORK/$1" DEADLINE=$((SECONDS + TIMEOUT))
    BG_PIDS="" FG_PID="" LAST_PID=""
    trap 'for p in $FG_PID $BG_PIDS; do stop "$p"; done' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    rm -rf -- "$DIR" "$OUT"  # stale reports must not pass for a new run
    mkdir -p "$DIR" "$OUT"
    cd "$DIR"
}

check_rc() {  # check_rc RC WHAT
    [ "$1" -eq 0 ] && return 0
    [ "$1" -eq 124 ] && fail "$2 timed out (suite timeout ${TIMEOUT}s)"
    fail "$2 exited with status $1"
}

# Our server, fuzzed by wstest's fuzzingclient.
suite_server() {
    suite_setup server
    local port=$SERVER_PORT rc=0
    write_spec fuzzingclient spec.json "ws://127.0.0.1:$port" "$OUT"
    say "peer: $PEER server --host 127.0.0.1 --port $port"
    start_bg peer.log "$PEER" server --host 127.0.0.1 --port "$port"
    local peer=$LAST_PID
    wait_port "$port" "$peer" 60 || fail "peer server did not start"
    say "wstest -m fuzzingclient (log: $DIR/wstest.log)"
    run_fg wstest.log env PYTHONUNBUFFERED=1 "$WSTEST" -m fuzzingclient -s spec.json || rc=$?
    check_rc "$rc" "wstest fuzzingclient"
    kill -0 "$peer" 2>/dev/null || fail "peer server exited during the run"
    say "done"
}

# start_fuzzingserver PORT: wstest -m fuzzingserver on 127.0.0.1:PORT for the suite's
# cases, reporting into $OUT; returns once it accepts connections. Its PID: FUZZINGSERVER.
start_fuzzingserver() {
    local port=$1
    write_spec fuzzingserver spec.json "ws://127.0.0.1:$port" "$OUT"
    say "wstest -m fuzzingserver on 127.0.0.1:$port (log: $DIR/wstest.log)"
    # -u 0: no embedded web server (it would take port 8080).
    start_bg wstest.log env PYTHONUNBUFFERED=1 "$VENV_PY" -c "$LOOPBACK_WSTEST" \
        -m fuzzingserver -s spec.json -u 0
    FUZZINGSERVER=$LAST_PID
    # wstest prints its banner before it binds: the port is the only reliable signal.
    wait_port "$port" "$FUZZINGSERVER" 60 || fail "fuzzingserver did not start"
}

# wait_reports WHO: until the fuzzingserver has written the reports, which are written
# when WHO opens /updateReports.
wait_reports() {
    local end=$((SECONDS + 30))
    until grep -q '^Report generation complete' wstest.log; do
        [ "$SECONDS" -lt "$end" ] || fail "fuzzingserver wrote no report (did $1 open /updateReports?)"
        kill -0 "$FUZZINGSERVER" 2>/dev/null || fail "fuzzingserver exited"
        sleep 0.2
    done
}

# Our client, run against wstest's fuzzingserver.
suite_client() {
    suite_setup client
    local port=$CLIENT_PORT rc=0
    start_fuzzingserver "$port"
    say "peer: $PEER client --url ws://127.0.0.1:$port --agent $AGENT"
    run_fg peer.log "$PEER" client --url "ws://127.0.0.1:$port" --agent "$AGENT" || rc=$?
    check_rc "$rc" "peer client"
    wait_reports "the peer"
    say "done"
}

# The daemon's outbound sockets (handler echo) against wstest's fuzzingserver: one socket
# per case, opened through the management API by scripts/autobahn-outbound.py.
suite_outbound() {
    suite_setup outbound
    local port=$OUTBOUND_PORT rc=0 admin="" end
    start_fuzzingserver "$port"
    # Loopback listeners on free ports; limits for the 9.* cases (16 MiB messages and
    # frames; the echo of one must not make the socket a slow consumer).
    cat >wsgate.yaml <<'YAML'
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
# The driver opens its sockets through POST /v1/outbound, which reaches only these hosts.
outbound_defaults:
  allowed_hosts: [127.0.0.1]
limits:
  max_frame_size: 16MiB
  max_message_size: 16MiB
  outbound_queue_size: 64MiB
routes:
  - path: /echo
    handler: echo
YAML
    say "wsgate: $WSGATE --config $DIR/wsgate.yaml (log: $DIR/wsgate.log)"
    start_bg wsgate.log "$WSGATE" --config wsgate.yaml
    local gate=$LAST_PID
    end=$((SECONDS + 60))
    until admin=$(grep -oE -m 1 'management API on http://127\.0\.0\.1:[0-9]+' wsgate.log); do
        kill -0 "$gate" 2>/dev/null || fail "wsgate exited before listening"
        [ "$SECONDS" -lt "$end" ] || fail "wsgate printed no management API banner within 60s"
        sleep 0.2
    done
    admin=${admin#management API on }
    say "driver: scripts/autobahn-outbound.py, management API $admin (log: $DIR/driver.log)"
    run_fg driver.log python3 "$SCRIPTS/autobahn-outbound.py" --fuzzingserver "127.0.0.1:$port" \
        --admin "$admin" --agent "${SUITE_AGENT[outbound]}" --case-timeout "$CASE_TIMEOUT" --max-size 16MiB || rc=$?
    # Status 1: some cases could not run, and the reports were asked for: keep them.
    [ "$rc" -eq 1 ] || check_rc "$rc" "outbound driver"
    wait_reports "the driver"
    check_rc "$rc" "outbound driver (cases that could not run: see $DIR/driver.log)"
    kill -0 "$gate" 2>/dev/null || fail "wsgate exited during the run"
    say "done"
}

# ---- main -------------------------------------------------------------------------
echo "autobahn: suites: $SUITES; cases: '$CASES'; exclude: '$EXCLUDE'" >&2
echo "autobahn: reports in $REPORTS, logs in $WORK, timeout ${TIMEOUT}s per suite" >&2
declare -A PID RC
for s in $SUITES; do
    ( "suite_$s" ) &
    PID[$s]=$!
done
on_signal() {
    trap - INT TERM
    for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait
    exit 130
}
trap on_signal INT TERM
for s in $SUITES; do
    RC[$s]=0
    wait "${PID[$s]}" || RC[$s]=$?
done
trap - INT TERM

status=0
for s in $SUITES; do
    out="$REPORTS/${OUTDIR[$s]}"
    # wstest announces how many cases the spec selects; the report must have them all.
    expect=$(grep -oE 'will run [0-9]+ test cases' "$WORK/$s/wstest.log" 2>/dev/null | grep -oE '[0-9]+' | head -n 1 || true)
    echo
    if [ -f "$out/index.json" ]; then
        python3 "$SCRIPTS/autobahn-report.py" "$out" --title "Autobahn $s suite (agent ${SUITE_AGENT[$s]})" \
            ${expect:+--expect "$expect"} | tee "$out/summary.md" || RC[$s]=1
    else
        echo "autobahn: $s suite: no report at $out/index.json" >&2
        RC[$s]=1
    fi
    if [ "${RC[$s]}" -ne 0 ]; then
        status=1
        for log in "$WORK/$s"/*.log; do
            [ -f "$log" ] || continue
            echo "----- $s suite: tail of $log -----" >&2
            tail -n 30 "$log" >&2
        done
    fi
done
echo
for s in $SUITES; do
    [ "${RC[$s]}" -eq 0 ] && echo "autobahn: $s suite PASSED" >&2 || echo "autobahn: $s suite FAILED" >&2
done
exit "$status"
