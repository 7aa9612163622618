#!/bin/sh
# Run the whole test suite against the build in directory $1 (default build).
# Unit tests are cmocka programs printing TAP; process-level tests are TAP
# scripts.  prove runs them all and prints the summary.  SHMQ_TEST_JOBS=1 runs them one
# at a time.  SHMQ_KEEP_TMP=1 keeps the directory (store, logs, outputs) of a
# test built on tests/helpers/broker.sh when one of its checks failed, and prints its path.
set -e
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$(pwd)/$BUILD" ;; esac
export SHMQ_BUILD="$BUILD"
export SHMQ_SRC="$(pwd)"
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
TESTS=""
for t in "$BUILD"/tests/unit/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] && TESTS="$TESTS $t"
done
for t in tests/integration/*.t tests/crash/*.t tests/security/*.t; do
    [ -f "$t" ] && TESTS="$TESTS $t"
done
# SHMQ_TEST_JOBS test files at a time (3 by default): the tests spend most of their time
# waiting for processes (a pass uses about a quarter of two cores), each has its own
# store, ports and shared-memory names, and every wait is bounded for a loaded machine.
JOBS=${SHMQ_TEST_JOBS:-3}
echo "shmq: running tests against $BUILD ($JOBS at a time)"
exec prove --exec '' --timer -j "$JOBS" $TESTS
