#!/usr/bin/env bash
# The project's whole test command (README "Run all the tests"; CI runs it through .ci/run):
#   1. makes sure the system libraries the build needs are present (zlib headers) and starts a throwaway
#      PostgreSQL for the cluster tests (scripts/postgres.sh; the tests start it themselves when run alone),
#   2. builds everything in debug mode with the tests (every import declared in Package.swift, warnings are errors),
#   3. runs the unit and loopback tests (swift test),
#   4. runs schemathesis against the live daemon's management API and its OpenAPI document
#      (scripts/api-conformance.sh),
#   5. runs Autobahn|TestSuite against our server and our client, side by side (scripts/autobahn.sh), and
#      beside them its client suite (cases 1.*-7.* and 12.1.*) against the daemon's outbound echo sockets
#      (scripts/autobahn.sh outbound); any case that is not OK or INFORMATIONAL fails the run,
#   6. runs a seconds-long smoke of the benchmark harness (scripts/bench-smoke.sh: every wsbench mode against
#      our servers and the C floors, no timing asserted), so that the instruments of BENCHMARKS.md keep working,
#   7. runs the unit and loopback tests again under ThreadSanitizer (scripts/sanitizers.sh thread; built beside
#      Autobahn, whose peers leave the cores idle much of the time),
#   8. runs every fuzz target for ten seconds (scripts/fuzz.sh --debug, built beside Autobahn too), and
#   9. soaks the daemon for one minute (scripts/soak.sh --minutes 1 on the debug build).
# Set AUTOBAHN=skip, SCHEMATHESIS=skip, BENCH_SMOKE=skip, TSAN=skip, FUZZ=skip or SOAK=skip to leave out those steps
# while iterating (CI never does). The summary gives each stage's duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# log STAGE: starts a stage; its duration goes to the summary.
stage_name="" stage_start=$SECONDS durations=""
log() {
    [ -z "$stage_name" ] || durations="$durations $stage_name $((SECONDS - stage_start))s;"
    stage_name=$(printf '%s' "$*" | cut -d' ' -f1-3) stage_start=$SECONDS
    printf '\n==> %s\n' "$*"
}

if [ ! -e /usr/include/zlib.h ]; then
    log "installing zlib1g-dev (zlib headers for permessage-deflate)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev
    fi
fi

log "starting PostgreSQL for the cluster tests (scripts/postgres.sh, stopped at the end)"
scripts/postgres.sh start
trap_postgres() { scripts/postgres.sh stop >/dev/null 2>&1 || true; WSGATE_PG_PORT=55433 scripts/postgres.sh stop >/dev/null 2>&1 || true; }
trap trap_postgres EXIT

log "building (debug, with tests)"
swift build --build-tests --explicit-target-dependency-import-check error

log "unit and loopback tests"
test_log=$(mktemp)
ob_pid="" ob_log=""
side_build_pid=""
trap 'trap_postgres; rm -f "$test_log" "$ob_log"; [ -z "$ob_pid" ] || kill -TERM "$ob_pid" 2>/dev/null || true; [ -z "$side_build_pid" ] || kill -TERM "$side_build_pid" 2>/dev/null || true' EXIT
set +e
scripts/swift-test.sh --skip-build 2>&1 | tee "$test_log"
test_rc=${PIPESTATUS[0]}
set -e
# The summary scripts/swift-test.sh ends with, repeated in ours where a truncated log still shows it.
test_summary=$(sed -n '/^swift test: [0-9]* tests, [0-9]* failed, exit status/,$p' "$test_log" | head -60)
read -r tests_total tests_failed < <(printf '%s\n' "$test_summary" | sed -n 's/^swift test: \([0-9]*\) tests, \([0-9]*\) failed.*/\1 \2/p' | tail -1) || true
tests_total=${tests_total:-0} tests_failed=${tests_failed:-1}

st_rc=0 st_cases=0
if [ "${SCHEMATHESIS:-run}" != skip ]; then
    log "management API contract (schemathesis)"
    st_log=$(mktemp)
    set +e
    scripts/api-conformance.sh 2>&1 | tee "$st_log"
    st_rc=${PIPESTATUS[0]}
    set -e
    st_cases=$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$st_log" | tail -1)
    rm -f "$st_log"
fi

ab_passed=0 ab_failed=0 ab_rc=0
if [ "${AUTOBAHN:-run}" != skip ]; then
    ob_cases='1.*,2.*,3.*,4.*,5.*,6.*,7.*,12.1.*'
    log "Autobahn|TestSuite: server and client (all cases), the daemon's outbound sockets ($ob_cases)"
    # The outbound suite runs beside the other two; its output follows theirs. The sanitizer's build too.
    if [ "${TSAN:-run}" != skip ] || [ "${FUZZ:-run}" != skip ]; then
        side_build_log=$(mktemp)
        # Each build's exit status goes to its own file: one failing does not fail the other's stage.
        (
            rc=0
            [ "${TSAN:-run}" = skip ] || nice -n 10 scripts/sanitizers.sh thread --build-only || rc=$?
            echo "$rc" >"$side_build_log.tsan"
            rc=0
            [ "${FUZZ:-run}" = skip ] || nice -n 10 scripts/fuzz.sh --debug --build-only || rc=$?
            echo "$rc" >"$side_build_log.fuzz"
        ) >"$side_build_log" 2>&1 &
        side_build_pid=$!
    fi
    ob_log=$(mktemp)
    scripts/autobahn.sh outbound --cases "$ob_cases" >"$ob_log" 2>&1 &
    ob_pid=$!
    scripts/autobahn.sh all || ab_rc=$?
    wait "$ob_pid" || ab_rc=$?
    ob_pid=""
    cat "$ob_log"
    read -r ab_passed ab_failed < <(python3 - .build-autobahn/reports <<'PY'
import json, os, sys
ok = bad = 0
for suite in ("servers", "clients", "outbound"):
    path = os.path.join(sys.argv[1], suite, "index.json")
    if not os.path.exists(path):
        continue
    for cases in json.load(open(path)).values():
        for case in cases.values():
            good = {"OK", "INFORMATIONAL"}
            if case["behavior"] in good and case["behaviorClose"] in good:
                ok += 1
            else:
                bad += 1
print(ok, bad)
PY
)
    [ "$ab_rc" -eq 0 ] || [ "$ab_failed" -gt 0 ] || ab_failed=1
fi

bs_rc=0 bs_passed=0 bs_failed=0
if [ "${BENCH_SMOKE:-run}" != skip ]; then
    log "benchmark harness smoke (scripts/bench-smoke.sh)"
    bs_log=$(mktemp)
    set +e
    scripts/bench-smoke.sh 2>&1 | tee "$bs_log"
    bs_rc=${PIPESTATUS[0]}
    set -e
    read -r bs_passed bs_failed < <(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$bs_log" | tail -1) || true
    rm -f "$bs_log"
    bs_passed=${bs_passed:-0} bs_failed=${bs_failed:-0}
    [ "$bs_rc" -eq 0 ] || [ "$bs_failed" -gt 0 ] || bs_failed=1
fi

# extra_stage NAME BUILD_RC SUMMARY_PREFIX COMMAND...: runs COMMAND unless its build failed (BUILD_RC), and records
# its exit status and the last line of its output starting with SUMMARY_PREFIX for the summary.
extra_lines="" extra_passed=0 extra_failed=0 extra_rc=0
extra_stage() {
    local name=$1 rc=$2 prefix=$3 output failures
    shift 3
    output=$(mktemp)
    if [ "$rc" -eq 0 ]; then
        set +e
        "$@" 2>&1 | tee "$output"
        rc=${PIPESTATUS[0]}
        set -e
    fi
    extra_lines="$extra_lines$name: $(grep "^$prefix" "$output" | tail -1 || true) (exit status $rc)"$'\n'
    # A stage that runs the tests (scripts/swift-test.sh) names what failed in its summary.
    failures=$(sed -n "/^swift test: [0-9]* tests, [0-9]* failed/,/^$prefix/p" "$output" | grep -v "^$prefix" | head -40 || true)
    [ "$(printf '%s' "$failures" | grep -c '')" -le 1 ] || extra_lines="$extra_lines$failures"$'\n'
    if [ "$rc" -eq 0 ]; then extra_passed=$((extra_passed + 1)); else extra_failed=$((extra_failed + 1)) extra_rc=1; fi
    rm -f "$output"
}

# The sanitizer's and the fuzz targets' builds, started beside Autobahn.
tsan_build_rc=0 fuzz_build_rc=0 prebuilt=()
if [ -n "$side_build_pid" ]; then
    log "waiting for the ThreadSanitizer and fuzz builds started beside Autobahn"
    wait "$side_build_pid" || true
    side_build_pid="" prebuilt=(--skip-build)
    tsan_build_rc=$(cat "$side_build_log.tsan" 2>/dev/null || echo 1)
    fuzz_build_rc=$(cat "$side_build_log.fuzz" 2>/dev/null || echo 1)
    # The builds' errors, if any (the whole log would repeat every compiled file).
    grep -E 'error:|warning:' "$side_build_log" | grep -v 'unhandled; explicitly declare' | head -20 || true
    rm -f "$side_build_log" "$side_build_log.tsan" "$side_build_log.fuzz"
fi

if [ "${TSAN:-run}" != skip ]; then
    log "unit and loopback tests under ThreadSanitizer (scripts/sanitizers.sh thread)"
    extra_stage "thread sanitizer" "$tsan_build_rc" "sanitizer thread:" scripts/sanitizers.sh thread "${prebuilt[@]}"
fi
if [ "${FUZZ:-run}" != skip ]; then
    log "fuzz targets, a few seconds each (scripts/fuzz.sh)"
    extra_stage "fuzzing" "$fuzz_build_rc" "fuzz:" scripts/fuzz.sh --debug "${prebuilt[@]}" --seconds "${FUZZ_SECONDS:-10}"
fi
if [ "${SOAK:-run}" != skip ]; then
    log "a one-minute soak of the daemon (scripts/soak.sh --minutes 1, debug build)"
    extra_stage "soak" 0 "soak:" scripts/soak.sh --minutes 1 --debug --skip-build --binary .build/debug/wsgate
fi

log "summary"
printf '%s\n' "$test_summary"
[ "${SCHEMATHESIS:-run}" = skip ] || echo "schemathesis: ${st_cases:-0} generated cases, exit status $st_rc"
[ "${AUTOBAHN:-run}" = skip ] || echo "autobahn: $ab_passed cases passed, $ab_failed failed (server, client and outbound suites)"
[ "${BENCH_SMOKE:-run}" = skip ] || echo "benchmark smoke: $bs_passed runs passed, $bs_failed failed, exit status $bs_rc"
printf '%s' "$extra_lines"
echo "durations:$durations"
st_passed=0 st_failed=0
if [ "${SCHEMATHESIS:-run}" != skip ]; then
    if [ "$st_rc" -eq 0 ]; then st_passed=1; else st_failed=1; fi
fi
passed=$(( ${tests_total:-0} - tests_failed + ab_passed + st_passed + bs_passed + extra_passed ))
failed=$(( tests_failed + ab_failed + st_failed + bs_failed + extra_failed ))
[ "$test_rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
[ "$test_rc" -eq 0 ] && [ "$ab_rc" -eq 0 ] && [ "$st_rc" -eq 0 ] && [ "$bs_rc" -eq 0 ] && [ "$extra_rc" -eq 0 ]
