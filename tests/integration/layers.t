#!/bin/sh
# libshm's layering: every #include in libshm obeys the "May include:" line
# of its folder's README (tools/check-layers.pl).  The checker is shown to
# catch what it must on a copy of the tree: an upward include, an include of
# a folder that is no layer, a source file outside the folders, a README
# without its rule.  TAP output.

SRC=${SHMQ_SRC:-/work/main}
. "$SRC/tests/helpers/tap.sh"
CHECK="$SRC/tools/check-layers.pl"
T=$(mktemp -d /tmp/shmq-layers.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT

perl "$CHECK" "$SRC" >"$T/tree.out" 2>&1
ok $? "every include in libshm obeys its folder's README" || diag "$T/tree.out"
for d in "$SRC"/libshm/*/; do
    l=$(basename "$d")
    grep -q '^May include:' "$d/README.md" 2>/dev/null
    ok $? "libshm/$l/README.md states what it may include"
done

# A copy to break on purpose.
mkdir -p "$T/src"
cp -r "$SRC/libshm" "$T/src/"
printf '#include "shm/ctl.h"\n' >>"$T/src/libshm/format/names.c"
perl "$CHECK" "$T/src" >"$T/up.out" 2>&1
is "$?" "1" "an upward include fails the check"
grep -q 'libshm/format/names.c:[0-9]*: includes "shm/ctl.h": layer format may not include shm' "$T/up.out"
ok $? "naming the file, the line and the rule" || diag "$T/up.out"

rm -rf "$T/src/libshm" && cp -r "$SRC/libshm" "$T/src/"
printf '#include "client/producer_int.h"\n' >>"$T/src/libshm/shm/ring.h"
printf '#include "rpc/x.h"\n' >>"$T/src/libshm/store/store.c"
printf '#include "store/store.h"\n' >>"$T/src/libshm/net/net.c"
touch "$T/src/libshm/loose.c"
sed -i '/^May include:/d' "$T/src/libshm/base/README.md"
perl "$CHECK" "$T/src" >"$T/many.out" 2>&1
is "$?" "1" "a tree with several faults fails the check"
grep -q 'layer shm may not include client' "$T/many.out"
ok $? "a sideways-up include from shm into client is reported" || diag "$T/many.out"
grep -q 'includes "rpc/x.h": no layer rpc' "$T/many.out"
ok $? "an include of a folder that is no layer is reported" || diag "$T/many.out"
grep -q 'libshm/net/net.c:[0-9]*: includes "store/store.h": layer net may not include store' "$T/many.out"
ok $? "the transport including the store is reported" || diag "$T/many.out"
grep -q 'libshm/loose.c: a source file outside every layer folder' "$T/many.out"
ok $? "a source file directly in libshm/ is reported" || diag "$T/many.out"
grep -q 'libshm/base/README.md: no "May include:" line' "$T/many.out"
ok $? "a README without its rule is reported" || diag "$T/many.out"

echo "1..$n"
[ "$failed" -eq 0 ]
