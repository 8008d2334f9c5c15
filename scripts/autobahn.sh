#!/usr/bin/env bash
# Run the Autobahn|TestSuite conformance suites against our autobahn-peer.
#
# Usage: scripts/autobahn.sh [all|server|client] [--cases '1.*,2.*'] [--exclude '9.*,12.*']
#   server  wstest fuzzingclient against `autobahn-peer server` (our server side)
#   client  `autobahn-peer client` against wstest fuzzingserver (our client side)
#   all     both suites side by side (default); --cases defaults to '*'
#
# Environment:
#   AUTOBAHN_PEER     peer executable (default <repo>/.build/debug/autobahn-peer)
#   AUTOBAHN_AGENT    agent name in the reports (default WebSocketGateway)
#   AUTOBAHN_TIMEOUT  per-suite timeout in seconds (default 2400); a timeout is a failure
#   AUTOBAHN_REPORTS  report root (default <repo>/.build-autobahn/reports): servers/, clients/
#   AUTOBAHN_WORK     specs and logs (default <repo>/.build-autobahn/work): server/, client/
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
        all|server|client) MODE=$1 ;;
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

PEER="${AUTOBAHN_PEER:-$ROOT/.build/debug/autobahn-peer}"
AGENT="${AUTOBAHN_AGENT:-WebSocketGateway}"
TIMEOUT="${AUTOBAHN_TIMEOUT:-2400}"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "AUTOBAHN_TIMEOUT must be a positive number of seconds"
if [ ! -f "$PEER" ] || [ ! -x "$PEER" ]; then
    die "peer executable not found: $PEER (swift build --product autobahn-peer, or set AUTOBAHN_PEER)"
fi
PEER="$(cd "$(dirname "$PEER")" && pwd)/$(basename "$PEER")"  # suites cd elsewhere
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

# Two distinct free loopback ports, below the Linux ephemeral range (32768+) so an
# outgoing connection cannot grab them between now and the bind.
SERVER_PORT="" CLIENT_PORT=""
read -r SERVER_PORT CLIENT_PORT < <(python3 -c '
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
    if len(ports) == 2:
        break
print(*ports)') || true
[ -n "${CLIENT_PORT:-}" ] || die "could not find free loopback ports"

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

suite_setup() {  # suite_setup NAME OUTDIR
    SUITE=$1 OUT=$2 DIR="$WORK/$1" DEADLINE=$((SECONDS + TIMEOUT))
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
    suite_setup server "$REPORTS/servers"
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

# Our client, run against wstest's fuzzingserver.
suite_client() {
    suite_setup client "$REPORTS/clients"
    local port=$CLIENT_PORT rc=0
    write_spec fuzzingserver spec.json "ws://127.0.0.1:$port" "$OUT"
    say "wstest -m fuzzingserver on 127.0.0.1:$port (log: $DIR/wstest.log)"
    # -u 0: no embedded web server (it would take port 8080).
    start_bg wstest.log env PYTHONUNBUFFERED=1 "$VENV_PY" -c "$LOOPBACK_WSTEST" \
        -m fuzzingserver -s spec.json -u 0
    local server=$LAST_PID
    # wstest prints its banner before it binds: the port is the only reliable signal.
    wait_port "$port" "$server" 60 || fail "fuzzingserver did not start"
    say "peer: $PEER client --url ws://127.0.0.1:$port --agent $AGENT"
    run_fg peer.log "$PEER" client --url "ws://127.0.0.1:$port" --agent "$AGENT" || rc=$?
    check_rc "$rc" "peer client"
    # Reports are written when the peer calls /updateReports.
    local end=$((SECONDS + 30))
    until grep -q '^Report generation complete' wstest.log; do
        [ "$SECONDS" -lt "$end" ] || fail "fuzzingserver wrote no report (did the peer call /updateReports?)"
        kill -0 "$server" 2>/dev/null || fail "fuzzingserver exited"
        sleep 0.2
    done
    say "done"
}

# ---- main -------------------------------------------------------------------------
echo "autobahn: suites: $SUITES; cases: '$CASES'; exclude: '$EXCLUDE'; agent: $AGENT" >&2
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
    [ "$s" = server ] && out="$REPORTS/servers" || out="$REPORTS/clients"
    # wstest announces how many cases the spec selects; the report must have them all.
    expect=$(grep -oE 'will run [0-9]+ test cases' "$WORK/$s/wstest.log" 2>/dev/null | grep -oE '[0-9]+' | head -n 1 || true)
    echo
    if [ -f "$out/index.json" ]; then
        python3 "$SCRIPTS/autobahn-report.py" "$out" --title "Autobahn $s suite (agent $AGENT)" \
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
