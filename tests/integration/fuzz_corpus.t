#!/bin/sh
# The fuzz harnesses' seed and regression inputs (tests/fuzz/corpus/) all
# run clean under ASan+UBSan: every decoder and loader of untrusted bytes
# still handles the inputs that once broke it.  Skipped per target when
# clang with libFuzzer is not installed.
SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
exec sh "$SRC/tests/fuzz/run_corpus.sh"
