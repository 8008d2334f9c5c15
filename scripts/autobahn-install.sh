#!/usr/bin/env bash
# Install Autobahn|TestSuite (wstest) into a Python 2.7 virtualenv, idempotently.
#
# Usage: scripts/autobahn-install.sh
#   Prints the absolute path of wstest on stdout (progress goes to stderr).
#
# Environment:
#   AUTOBAHN_VENV      venv dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/websocketgateway/autobahn-venv)
#   AUTOBAHN_PYTHON27  Python 2.7 interpreter (default /root/.pyenv/versions/2.7.18/bin/python,
#                      then python2.7 / python2 on PATH)
set -euo pipefail

VENV="${AUTOBAHN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/websocketgateway/autobahn-venv}"
WSTEST="$VENV/bin/wstest"

log() { echo "autobahn-install: $*" >&2; }

wstest_works() { [ -x "$WSTEST" ] && timeout 60 "$WSTEST" -a >/dev/null 2>&1 </dev/null; }

if wstest_works; then
    echo "$WSTEST"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
# Serialise concurrent installs into the same venv.
exec 9>"$VENV.lock"
flock -w 1800 9 || { log "timed out waiting for $VENV.lock"; exit 1; }
if wstest_works; then  # another process finished the install while we waited
    echo "$WSTEST"
    exit 0
fi

PY27="${AUTOBAHN_PYTHON27:-}"
if [ -z "$PY27" ]; then
    for c in /root/.pyenv/versions/2.7.18/bin/python python2.7 python2; do
        if command -v "$c" >/dev/null 2>&1; then PY27="$(command -v "$c")"; break; fi
    done
fi
if [ -z "$PY27" ] || ! "$PY27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
    log "no Python 2.7 interpreter found (set AUTOBAHN_PYTHON27)"
    exit 1
fi

# A half-built venv from an interrupted run: start over (only if it really is a venv).
if [ -e "$VENV" ]; then
    if [ -f "$VENV/pyvenv.cfg" ] || [ -x "$VENV/bin/python" ]; then
        log "removing broken venv $VENV"
        rm -rf -- "$VENV"
    else
        log "$VENV exists and is not a virtualenv; refusing to touch it"
        exit 1
    fi
fi

INSTALL_LOG="$(mktemp "${TMPDIR:-/tmp}/autobahn-install.XXXXXX.log")"
trap 'rm -f -- "$INSTALL_LOG"' EXIT
run() {  # run a bounded install step, show its log tail if it fails
    if ! timeout 1200 "$@" >>"$INSTALL_LOG" 2>&1 </dev/null; then
        log "failed: $*"
        tail -n 40 "$INSTALL_LOG" >&2
        exit 1
    fi
}

start=$SECONDS
log "installing Autobahn|TestSuite into $VENV (python: $PY27)"
"$PY27" -m pip --version >/dev/null 2>&1 || run "$PY27" -m ensurepip --user
# virtualenv 20.15.1 is the newest release that still runs on Python 2.7.
"$PY27" -m virtualenv --version >/dev/null 2>&1 || run "$PY27" -m pip install --user 'virtualenv==20.15.1'
run "$PY27" -m virtualenv "$VENV"

# Full pin set, known to work on Python 2.7 (autobahntestsuite 25.10.1 pins most of
# these itself; the rest are pinned so a new upload cannot break the install).
cat >"$VENV/autobahn-constraints.txt" <<'EOF'
autobahntestsuite==25.10.1
autobahn==0.10.9
Twisted==19.10.0
txaio==2.1.0
setuptools==44.0.0
incremental==16.10.1
pyOpenSSL==19.1.0
cryptography==3.3.2
zope.interface==4.6.0
Jinja2==2.11.3
MarkupSafe==1.1.1
Werkzeug==1.0.1
klein==17.10.0
service-identity==18.1.0
unittest2==1.1.0
six==1.16.0
argparse==1.4.0
attrs==21.4.0
Automat==22.10.0
cffi==1.15.1
constantly==15.1.0
enum34==1.1.10
hyperlink==21.0.0
idna==2.10
ipaddress==1.0.23
linecache2==1.0.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
pycparser==2.21
PyHamcrest==1.10.1
traceback2==1.4.0
typing==3.10.0.0
ujson==2.0.3
wsaccel==0.6.6
EOF
run "$VENV/bin/pip" install -c "$VENV/autobahn-constraints.txt" autobahntestsuite

if ! wstest_works; then
    log "wstest was installed but does not run"
    tail -n 40 "$INSTALL_LOG" >&2
    exit 1
fi
log "done in $((SECONDS - start))s: $("$WSTEST" -a 2>/dev/null | tr '\n' ' ')"
echo "$WSTEST"
