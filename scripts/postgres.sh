#!/usr/bin/env bash
# A throwaway PostgreSQL server for the cluster's tests and benchmarks (Debian 12's PostgreSQL 15):
#
#   scripts/postgres.sh start    installs the Debian packages when missing, creates a data directory owned by an
#                                unprivileged user (the server refuses to run as root), starts the server on
#                                127.0.0.1 and prints its URL (postgres://wsgate:wsgate@127.0.0.1:PORT/wsgate)
#   scripts/postgres.sh url      prints the URL of the running server (exit 1 when it is not running)
#   scripts/postgres.sh stop     stops it (a fast shutdown) and removes its data directory
#   scripts/postgres.sh restart  stops and starts the same server, keeping its data (the cluster tests' outage)
#
# Idempotent: `start` on a running server only prints its URL. Settings: WSGATE_PG_PORT (default 55432),
# WSGATE_PG_DIR (default /tmp/wsgate-postgres-PORT, the data directory, its socket and its log), WSGATE_PG_USER (the
# system user that runs the server: default `postgres` when it exists, else `nobody`). Nothing listens beyond
# loopback; the role `wsgate` (password `wsgate`) owns the database `wsgate`.
set -euo pipefail

port=${WSGATE_PG_PORT:-55432}
root=${WSGATE_PG_DIR:-/tmp/wsgate-postgres-$port}
data=$root/data
url="postgres://wsgate:wsgate@127.0.0.1:$port/wsgate"

# The server's binaries: Debian keeps them out of PATH.
bindir=""
find_bindir() {
    bindir=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
    [ -n "$bindir" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
}

install_packages() {
    find_bindir
    if [ -n "$bindir" ] && [ -x "$bindir/postgres" ] && command -v psql >/dev/null; then return; fi
    echo "==> installing PostgreSQL (Debian packages postgresql-15, postgresql-client-15)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
    find_bindir
}

# as_user CMD...: runs CMD as the unprivileged owner of the data directory.
owner=""
as_user() {
    if [ "$(id -u)" -ne 0 ]; then "$@"; else runuser -u "$owner" -- "$@"; fi
}

choose_owner() {
    if [ "$(id -u)" -ne 0 ]; then owner=$(id -un); return; fi
    owner=${WSGATE_PG_USER:-}
    if [ -z "$owner" ]; then
        if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
    fi
}

running() {
    [ -n "$bindir" ] || find_bindir
    [ -f "$data/postmaster.pid" ] && as_user "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

ready() {
    for _ in $(seq 1 100); do
        if PGPASSWORD=wsgate psql "postgres://wsgate:wsgate@127.0.0.1:$port/postgres" -qAtc 'select 1' >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "PostgreSQL did not accept connections on 127.0.0.1:$port within 10 s; its log:" >&2
    tail -20 "$root/postgres.log" >&2 || true
    return 1
}

start() {
    install_packages
    choose_owner
    if running; then ensure_database; echo "$url"; return; fi
    mkdir -p "$root"
    chown "$owner" "$root" 2>/dev/null || true
    chmod 700 "$root"
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$data"
        local pwfile="$root/pwfile"
        printf 'wsgate\n' > "$pwfile"
        chown "$owner" "$pwfile" 2>/dev/null || true
        as_user "$bindir/initdb" -D "$data" -U wsgate --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 --locale=C >/dev/null
        rm -f "$pwfile"
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '$root'"
            echo "max_connections = 200"
            # A test server: nothing here must survive a crash of the machine.
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        } >> "$data/postgresql.conf"
    fi
    as_user "$bindir/pg_ctl" -D "$data" -l "$root/postgres.log" -w -t 30 start >/dev/null
    ready
    ensure_database
    echo "$url"
}

ensure_database() {
    local admin="postgres://wsgate:wsgate@127.0.0.1:$port/postgres"
    if ! PGPASSWORD=wsgate psql "$admin" -qAtc "select 1 from pg_database where datname = 'wsgate'" | grep -q 1; then
        PGPASSWORD=wsgate psql "$admin" -qc 'create database wsgate' >/dev/null
    fi
}

stop() {
    choose_owner
    find_bindir
    if running; then as_user "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
    [ "${1:-}" = keep ] || rm -rf "$root"
}

case "${1:-start}" in
    start) start ;;
    url) choose_owner; if running; then echo "$url"; else exit 1; fi ;;
    stop) stop ;;
    restart) stop keep; start ;;
    *) echo "usage: $0 start|url|stop|restart" >&2; exit 2 ;;
esac
