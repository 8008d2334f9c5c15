#!/usr/bin/env bash
# Runs the unit and loopback tests (swift test) under a sanitizer, in a build folder of its own:
#
#   scripts/sanitizers.sh thread     ThreadSanitizer, .build-tsan (scripts/tsan-suppressions.txt lists the known
#                                    false positives outside this project, each with its source)
#   scripts/sanitizers.sh address    AddressSanitizer (with LeakSanitizer's leak check at exit), .build-asan
#   ... --build-only | --skip-build  only build, or only test (the test command builds beside Autobahn, then tests)
#
# The daemon tests start the wsgate binary of the same sanitized build (WSGATE_BINARY), so the daemon runs under the
# sanitizer too: a report makes it exit with status 66, which the tests check. Fails on any failed test and on any
# sanitizer report in the test process. A build from clean takes about as long as the debug build; the tests take
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
reports=$(grep -c "$marker" "$log" || true)
tests=$(sed -n 's/.*Test run with \([0-9][0-9]*\) tests\{0,1\} .*/\1/p' "$log" | tail -1)
failed=$(grep '✘ Test .* failed' "$log" | grep -vc 'Test run with' || true)
echo "sanitizer $kind: ${tests:-0} tests, $failed failed, $reports reports, exit status $rc"
[ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ "$failed" -eq 0 ]
