#!/bin/sh
# Run each libFuzzer harness once over every input of its corpus
# (tests/fuzz/corpus/<target>/) and print TAP: one test per target, failed
# by any crash, sanitizer report or leak.  The harnesses are in
# $SHMQ_FUZZ_BUILD (default <src>/build-fuzz; `make all` builds them when
# clang has libFuzzer).  A missing harness is a skip, a missing corpus a
# failure.
SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
FB=${SHMQ_FUZZ_BUILD:-$SRC/build-fuzz}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
log=$(mktemp "${TMPDIR:-/tmp}/shmq-fuzz-corpus.XXXXXX")
trap 'rm -f "$log"' EXIT
n=0
failed=0
for src in "$SRC"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz_}
    n=$((n + 1))
    bin="$FB/fuzz_$t"
    corpus="$SRC/tests/fuzz/corpus/$t"
    if [ ! -x "$bin" ]; then
        echo "ok $n - # SKIP $t: no harness in $FB (clang with libFuzzer needed)"
        continue
    fi
    count=$(ls "$corpus" 2>/dev/null | wc -l)
    if [ "$count" -eq 0 ]; then
        echo "not ok $n - $t: no seed corpus in $corpus"
        failed=$((failed + 1))
        continue
    fi
    # libFuzzer runs each file given as an argument once and exits non-zero on a crash.
    if "$bin" -runs=1 "$corpus"/* >"$log" 2>&1; then
        echo "ok $n - $t: every one of its $count corpus inputs runs clean under ASan+UBSan"
    else
        echo "not ok $n - $t: an input of its corpus crashes the harness"
        grep -E 'ERROR|runtime error|SUMMARY|Running:' "$log" | tail -n 20 | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
