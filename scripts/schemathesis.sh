#!/usr/bin/env bash
# Contract-test the daemon's management API against its own OpenAPI document with schemathesis.
#
# Usage: scripts/schemathesis.sh BASE_URL TOKEN [ST_RUN_OPTION...]
#   BASE_URL  the admin listener, loopback only, e.g. http://127.0.0.1:9090
#   TOKEN     the admin bearer token (sent as `Authorization: Bearer TOKEN`)
#   Further arguments are passed to `st run` as they are (e.g. --report junit --report-dir DIR).
#
# The schema is fetched from BASE_URL/openapi.yaml and every operation is tested with the checks
# not_a_server_error, status_code_conformance and response_schema_conformance. Exit status is
# non-zero on any failure or error, on a timeout, on a failed install, and when every secured
# operation answers 401 (a wrong TOKEN).
# Note: positive tests of DELETE /v1/connections close every connection of the daemon under test.
#
# Environment:
#   SCHEMATHESIS_VENV          venv dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/websocketgateway/schemathesis-venv)
#   SCHEMATHESIS_PYTHON        Python >= 3.11 for the venv (default /root/.pyenv/versions/3.11.7/bin/python3,
#                              then python3 on PATH)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 30)
#   SCHEMATHESIS_SEED          random seed (default 20250101)
#   SCHEMATHESIS_WORKERS       concurrent workers (default 1, so runs are reproducible)
#   SCHEMATHESIS_TIMEOUT       wall-clock limit for the whole run in seconds (default 600)
#   SCHEMATHESIS_WORK          directory st runs in (default <repo>/.build-schemathesis): it holds the
#                              generated schemathesis.toml and keeps .hypothesis/ and .schemathesis/
#                              (for `st replay ID`) out of the tree; relative paths in ST_RUN_OPTIONs
#                              are relative to it
set -euo pipefail

# The pinned release; its `st run` options are the ones used below (checked against `st run --help`).
ST_VERSION=4.32.5

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SCRIPTS")"

usage() { sed -n '2,/^$/{s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
log() { echo "schemathesis: $*" >&2; }
die() { log "$*"; exit 2; }

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; die "need BASE_URL and TOKEN"; }
BASE_URL=${1%/}
TOKEN=$2
shift 2

# Loopback only: http(s)://127.x.x.x, localhost or [::1], optional port and base path.
LOOPBACK_RE='^https?://(127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|localhost|\[::1\])(:[0-9]{1,5})?(/[^?#[:space:]]*)?$'
[[ "$BASE_URL" =~ $LOOPBACK_RE ]] || die "BASE_URL must be an http(s) URL on the loopback interface (127.0.0.0/8, localhost, [::1]): $BASE_URL"
[ -n "$TOKEN" ] || die "TOKEN is empty"
[[ "$TOKEN" != *[[:space:]]* ]] || die "TOKEN must not contain whitespace"

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-30}
SEED=${SCHEMATHESIS_SEED:-20250101}
WORKERS=${SCHEMATHESIS_WORKERS:-1}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-600}
[[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_MAX_EXAMPLES must be a positive integer"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "SCHEMATHESIS_SEED must be a non-negative integer"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_WORKERS must be a positive integer"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_TIMEOUT must be a positive number of seconds"

# ---------------------------------------------------------------------------------------------
# Install (idempotent): skip when the venv's `st` runs and is the pinned version.
VENV="${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/websocketgateway/schemathesis-venv}"
ST="$VENV/bin/st"

st_works() {
    [ -x "$ST" ] || return 1
    local version
    version="$(timeout 120 "$ST" --version 2>/dev/null </dev/null)" || return 1
    [ "$version" = "st, version $ST_VERSION" ]
}

install_st() {
    mkdir -p "$(dirname "$VENV")"
    # Serialise concurrent installs into the same venv.
    exec 9>"$VENV.lock"
    flock -w 1800 9 || { log "timed out waiting for $VENV.lock"; exit 1; }
    if st_works; then exec 9>&-; return 0; fi  # another process finished the install while we waited

    local py="${SCHEMATHESIS_PYTHON:-}" c
    if [ -z "$py" ]; then
        for c in /root/.pyenv/versions/3.11.7/bin/python3 python3; do
            if command -v "$c" >/dev/null 2>&1; then py="$(command -v "$c")"; break; fi
        done
    fi
    if [ -z "$py" ] || ! "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        log "no Python >= 3.11 found (schemathesis $ST_VERSION needs it; set SCHEMATHESIS_PYTHON)"
        exit 1
    fi

    # A half-built or outdated venv: start over (only if it really is a venv).
    if [ -e "$VENV" ]; then
        if [ -f "$VENV/pyvenv.cfg" ]; then
            log "replacing venv $VENV"
            rm -rf -- "$VENV"
        else
            log "$VENV exists and is not a virtualenv; refusing to touch it"
            exit 1
        fi
    fi

    local install_log
    install_log="$(mktemp "${TMPDIR:-/tmp}/schemathesis-install.XXXXXX")"
    run() {  # a bounded install step; show its log tail if it fails
        if ! timeout 1200 "$@" >>"$install_log" 2>&1 </dev/null; then
            log "failed: $*"
            tail -n 40 "$install_log" >&2
            rm -f -- "$install_log"
            exit 1
        fi
    }

    local start=$SECONDS
    log "installing schemathesis $ST_VERSION into $VENV (python: $py)"
    run "$py" -m venv "$VENV"
    # The full pin set that schemathesis 4.32.5 resolved to on Python 3.11, so that a new upload
    # of a dependency cannot change a run.
    cat >"$VENV/schemathesis-constraints.txt" <<EOF
schemathesis==$ST_VERSION
anyio==4.16.0
certifi==2026.10.18
charset-normalizer==3.5.2
click==8.5.1
graphql-core==3.3.2
harfile==0.6.0
hypothesis==6.170.15
hypothesis-graphql==0.13.5
idna==3.20
iniconfig==2.3.1
jsonschema_rs==0.60.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
packaging==26.3
pluggy==1.7.0
Pygments==2.21.0
pyrate-limiter==4.5.1
pytest==9.2.0
PyYAML==6.0.3
requests==2.34.2
rich==15.0.0
sortedcontainers==2.4.0
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
EOF
    run "$VENV/bin/python" -m pip install -c "$VENV/schemathesis-constraints.txt" "schemathesis==$ST_VERSION"
    if ! st_works; then
        log "schemathesis was installed but \`st --version\` does not report $ST_VERSION"
        tail -n 40 "$install_log" >&2
        rm -f -- "$install_log"
        exit 1
    fi
    rm -f -- "$install_log"
    exec 9>&-
    log "installed in $((SECONDS - start))s"
}

st_works || install_st

# ---------------------------------------------------------------------------------------------
# Run. `--max-time` is not used: in schemathesis 4 it is a budget the run repeats fuzzing until it
# has spent, not a cap, so the wall-clock cap is `timeout`.
# Its example database is off (a run depends on the seed alone); what st still writes stays in $WORK.
WORK="${SCHEMATHESIS_WORK:-$ROOT/.build-schemathesis}"
mkdir -p "$WORK"
cd "$WORK"
# Warnings that mean the run tested nothing real fail it: every operation answering 401 (a wrong
# token), a base URL the schema does not fit, a documented operation answering 405.
CONFIG="$WORK/schemathesis.toml"
cat >"$CONFIG" <<'EOF'
# Written by scripts/schemathesis.sh on every run.
[warnings]
fail-on = ["missing_auth", "base_url_mismatch", "method_not_allowed"]
# 502 (an outbound socket's upstream refused it) and 503 (a cap reached, a slow consumer) are documented
# answers about the world outside the API, not server faults; any other 5xx fails the run.
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "502", "503"]
EOF
CHECKS=not_a_server_error,status_code_conformance,response_schema_conformance
cmd=(
    "$ST" --config-file "$CONFIG" run "$BASE_URL/openapi.yaml"
    --url "$BASE_URL"
    --header "Authorization: Bearer $TOKEN"
    --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --workers "$WORKERS"
    --wait-for-schema 30
    --request-timeout 10
    --generation-database none
    --no-color
    "$@"
)
log "schemathesis $ST_VERSION: st --config-file $CONFIG run $BASE_URL/openapi.yaml --url $BASE_URL --header 'Authorization: Bearer ***'" \
    "--checks $CHECKS --max-examples $MAX_EXAMPLES --seed $SEED --workers $WORKERS" \
    "--wait-for-schema 30 --request-timeout 10 --generation-database none --no-color $* (timeout ${TIMEOUT}s)"
status=0
timeout --kill-after=30 "$TIMEOUT" "${cmd[@]}" </dev/null || status=$?
case $status in
    0) log "passed" ;;
    124|137) log "timed out after ${TIMEOUT}s"; exit 124 ;;
    1) log "failed; replay a failing case with: cd $WORK && $ST replay ID"; exit 1 ;;
    *) log "failed (st exit status $status)"; exit "$status" ;;
esac
