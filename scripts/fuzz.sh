#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (address sanitizer on) and runs them, one after the other.
#
#   scripts/fuzz.sh                        every target for 30 s each
#   scripts/fuzz.sh frames --seconds 120   one target (several may be named) for 120 s
#   scripts/fuzz.sh config --runs 10000000 one target until 10 million inputs were run (no time limit)
#   scripts/fuzz.sh --replay               run only the committed seeds (and the saved corpus) once: a quick check
#   scripts/fuzz.sh --list                 the targets
#   options: --skip-build (reuse the last build), --build-only, --debug (debug build: slower, with SwiftNIO's debug checks),
#            --fresh (forget the corpus grown by earlier runs), -- ARGS (passed to every libFuzzer run)
#
# Targets: frames, server-handshake, client-handshake, extensions, config, codecs, actions (Fuzz/Sources/Fuzz*/, each
# documenting its input format; most have a dictionary in Fuzz/Dictionaries/). Each run starts from the seeds in
# Fuzz/Corpus/TARGET/ and from the corpus earlier runs grew in .build-fuzz/corpus/TARGET/ (new inputs go there,
# never into Fuzz/Corpus). A crash, sanitizer report, leak, timeout (10 s) or out-of-memory input is saved under
# .build-fuzz/artifacts/TARGET/ (git-ignored); reproduce it with `.build-fuzz/release/release/FuzzTARGET FILE`,
# then add it to Fuzz/Corpus/TARGET/ once fixed.
#
# Prints, per target, the executions, executions per second and crashes (from libFuzzer's final statistics) and
# exits 1 if any target crashed. Logs: .build-fuzz/logs/TARGET.log. Run it under `nice` on a shared machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

all_targets=(frames server-handshake client-handshake extensions config codecs actions)
seconds=30 runs="" build=1 build_only=0 configuration=release fresh=0 replay=0
targets=() extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift ;;
        --runs) runs=$2; shift ;;
        --skip-build) build=0 ;;
        --build-only) build_only=1 ;;
        --debug) configuration=debug ;;
        --fresh) fresh=1 ;;
        --replay) replay=1 ;;
        --list) printf '%s\n' "${all_targets[@]}"; exit 0 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *)
            if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
                echo "unknown target $1 (targets: ${all_targets[*]})" >&2
                exit 2
            fi
            targets+=("$1")
            ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "--seconds needs a whole number" >&2; exit 2; }
[ -z "$runs" ] || [[ "$runs" =~ ^[0-9]+$ ]] || { echo "--runs needs a whole number" >&2; exit 2; }

# frames -> FuzzFrames, server-handshake -> FuzzServerHandshake
executable() {
    local name="" part
    IFS=- read -ra parts <<<"$1"
    for part in "${parts[@]}"; do name+="${part^}"; done
    echo "Fuzz$name"
}

scratch="$root/.build-fuzz/$configuration"
# No -parse-as-library: each target's main.swift starts libFuzzer's driver (see Fuzz/Sources/FuzzSupport/LibFuzzer.swift).
flags=(-c "$configuration" --package-path Fuzz --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address)
if [ "$build" = 1 ]; then
    echo "==> building ${targets[*]} ($configuration, -sanitize=fuzzer,address)" >&2
    # One product at a time: a plain `swift build` would also build (and fail to link) the root package's executables.
    for target in "${targets[@]}"; do swift build "${flags[@]}" --product "$(executable "$target")"; done
fi
[ "$build_only" = 0 ] || exit 0
bin="$(swift build "${flags[@]}" --show-bin-path)"

# A crash is reported by libFuzzer and the sanitizer (symbolized, with the "Swift runtime failure" frame) rather
# than by Swift's backtracer, whose memory reader the address sanitizer takes for a bug of its own.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
symbolizer="$(dirname "$(command -v swift)")/llvm-symbolizer"
[ ! -x "$symbolizer" ] || export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$symbolizer}"
mkdir -p .build-fuzz/logs
summary=() failed=0
for target in "${targets[@]}"; do
    binary="$bin/$(executable "$target")"
    [ -x "$binary" ] || { echo "missing $binary (run without --skip-build)" >&2; exit 1; }
    corpus=".build-fuzz/corpus/$target" artifacts=".build-fuzz/artifacts/$target" log=".build-fuzz/logs/$target.log"
    [ "$fresh" = 0 ] || rm -rf "$corpus"
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    options=(-artifact_prefix="$artifacts/" -print_final_stats=1 -timeout=10)
    [ ! -f "Fuzz/Dictionaries/$target.dict" ] || options+=(-dict="Fuzz/Dictionaries/$target.dict")
    if [ "$replay" = 1 ]; then
        options+=(-runs=0)
    elif [ -n "$runs" ]; then
        options+=(-runs="$runs")
    else
        options+=(-max_total_time="$seconds")
    fi
    echo "==> $target: ${options[*]:3} ${extra[*]}" >&2
    status=0
    "$binary" "${options[@]}" "${extra[@]}" "$corpus" "Fuzz/Corpus/$target" >"$log" 2>&1 || status=$?
    # libFuzzer's last words: "Done N runs in S second(s)" and the final statistics.
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$executions" ] || executions=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if [ "$status" != 0 ] && [ "$crashes" = 0 ]; then crashes=1; fi
    if [ "$crashes" != 0 ]; then
        failed=1
        echo "!! $target crashed (exit $status); artifacts in $artifacts/, log $log:" >&2
        grep -m 5 -E '^==[0-9]+==ERROR|^SUMMARY|Fatal error|fuzz check failed|Test unit written' "$log" >&2 || tail -20 "$log" >&2
    fi
    summary+=("$(printf '%-18s %12s %10s %8s %8s' "$target" "${executions:-?}" "${speed:-?}" "${elapsed:-?}" "$crashes")")
done

printf '\n%-18s %12s %10s %8s %8s\n' target executions exec/s seconds crashes
printf '%s\n' "${summary[@]}"
total_runs=0 total_crashes=0
for row in "${summary[@]}"; do
    read -r _ row_runs _ _ row_crashes <<<"$row"
    [[ "$row_runs" =~ ^[0-9]+$ ]] && total_runs=$((total_runs + row_runs))
    [[ "$row_crashes" =~ ^[0-9]+$ ]] && total_crashes=$((total_crashes + row_crashes))
done
echo "fuzz: ${#summary[@]} targets, $total_runs executions, $total_crashes crashes"
exit "$failed"
