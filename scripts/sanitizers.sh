#!/usr/bin/env bash
# Runs the unit and loopback tests (swift test) under a sanitizer, in a build folder of its own:
#
#   scripts/sanitizers.sh thread     ThreadSanitizer, .build-tsan (scripts/tsan-suppressions.txt lists the known
#                                    false positives outside this project, each with its source)
#   scripts/sanitizers.sh address    AddressSanitizer (with LeakSanitizer's leak check at exit), .build-asan
#   ... --build-only | --skip-build  only build, or only test (the test command builds beside Autobahn, then tests)
#
# The daemon tests start the wsgate binary of the same sanitized build (WSGATE_BINARY), so the daemon runs under the
# sanitizer too: a report makes it exit with status 66, which the tests check. Fails on any failed test (a few are
# run again alone first, by scripts/swift-test.sh) and on any sanitizer report in the test process. A build from clean takes about as long as the debug build; the tests take
# about twice as long as without a sanitizer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

kind=${1:-thread}
step=${2:-all}
case "$kind" in
    thread) scratch=.build-tsan; marker="WARNING: ThreadSanitizer"
        export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan-suppressions.txt:exitcode=66:halt_on_error=0:second_deadlock_stack=1" ;;
    address) scratch=.build-asan; marker="ERROR: AddressSanitizer\|ERROR: LeakSanitizer"
        export ASAN_OPTIONS="exitcode=66:detect_leaks=1:abort_on_error=0"
        export LSAN_OPTIONS="exitcode=66:suppressions=$PWD/scripts/lsan-suppressions.txt" ;;
    *) echo "usage: scripts/sanitizers.sh thread|address" >&2; exit 2 ;;
esac

if [ "$step" != --skip-build ]; then
    echo "==> building with the $kind sanitizer ($scratch)"
    swift build --build-tests --sanitize="$kind" --scratch-path "$scratch"
fi
[ "$step" != --build-only ] || exit 0
bin=$(swift build --sanitize="$kind" --scratch-path "$scratch" --show-bin-path)
export WSGATE_BINARY="$bin/wsgate"

echo "==> swift test under the $kind sanitizer"
log=$(mktemp) out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT
set +e
SWIFT_TEST_LOG=$log scripts/swift-test.sh --skip-build --sanitize="$kind" --scratch-path "$scratch" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# Reports count in both runs: the first, and the failed tests' run again alone.
reports=$(grep -c "$marker" "$log" || true)
summary=$(sed -n 's/^swift test: \([0-9]* tests, [0-9]* failed\).*/\1/p' "$out" | tail -1)
echo "sanitizer $kind: ${summary:-0 tests, 0 failed}, $reports reports, exit status $rc"
[ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]
