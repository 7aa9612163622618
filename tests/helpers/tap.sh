# TAP output for the shell tests: a counter, ok/is, and diagnostics.
# Usage:  . "$SRC/tests/helpers/tap.sh"   then ok/is; end with
#         echo "1..$n"; [ "$failed" -eq 0 ]   (or broker.sh's done_testing).

n=0
failed=0

# ok STATUS DESCRIPTION: STATUS 0 is a pass.  Returns STATUS, so that
# `ok $? "..." || diag FILE` shows diagnostics only for a failure.
ok() {
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
        return 0
    fi
    echo "not ok $n - $2"
    failed=$((failed + 1))
    return 1
}

# is GOT WANT DESCRIPTION
is() {
    if [ "$1" = "$2" ]; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    echo "#   got:  '$1'" >&2
    echo "#   want: '$2'" >&2
    return 1
}

# Show a file's content (the last 40 lines) as TAP diagnostics, on stderr: prove
# shows them also when it is not verbose (make test), so a failure says why.
diag() {
    tail -n 40 "$1" 2>/dev/null | sed 's/^/#   /' >&2
}
