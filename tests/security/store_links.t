#!/bin/sh
# Links and special files planted in a store do not redirect shmqd's writes:
# a symbolic link at lock, abort, checkpoint or a CommitLog segment makes
# shmqd refuse to start with a message naming the link, and the file it
# points at (outside the store) is untouched; a link at
# config/topics.json.tmp is replaced by a new file, its target untouched; a
# FIFO at checkpoint makes shmqd exit with an error naming it instead of
# hanging in recovery; a store root owned by another user, or writable by
# others, is refused with exit 2.  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
. "${SHMQ_SRC:-/work/main}/tests/security/common.sh"
broker_init sec-links
sec_user_init
trap 'broker_cleanup; sec_user_cleanup' EXIT

OUT="$T/outside"
plant_target() {
    printf 'root-only data\n' >"$OUT"
    chmod 600 "$OUT"
}
target_untouched() {
    [ "$(cat "$OUT")" = "root-only data" ]
}

# refused_with_link NAME: a fresh store with a link at NAME; shmqd refuses naming it.
refused_with_link() {
    rm -rf "$STORE"
    mkdir -p "$STORE"
    chmod 750 "$STORE"
    mkdir -p "$(dirname "$STORE/$1")"
    plant_target
    ln -s "$OUT" "$STORE/$1"
    shmqd_once "$T/link-$(echo "$1" | tr / _).log"
    local log="$T/link-$(echo "$1" | tr / _).log"
    [ "$RUN_RC" -ne 0 ] && [ "$RUN_RC" -ne 124 ]
    ok $? "a link at $1: shmqd exits with an error (status $RUN_RC)" || diag "$log"
    grep -q "ERROR.*$STORE/$1\( is a symbolic link\|: Too many levels of symbolic links\)" "$log"
    ok $? "a link at $1: the error names the link" || diag "$log"
    target_untouched
    ok $? "a link at $1: the file it points at is untouched"
}

refused_with_link lock
refused_with_link abort
refused_with_link checkpoint
refused_with_link commitlog/00000000000000000000

# ---- config/topics.json.tmp: replaced, target untouched ----------------------------

rm -rf "$STORE"
plant_target
start_broker
ok $? "shmqd starts on a new store"
ln -s "$OUT" "$STORE/config/topics.json.tmp" 2>/dev/null ||
    { mkdir -p "$STORE/config" && ln -s "$OUT" "$STORE/config/topics.json.tmp"; }
"$CTL" send --store "$STORE" $SMALL TopicLinks "hello" >"$T/send.out" 2>&1
ok $? "a message is sent" || diag "$T/send.out"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC) and writes topics.json" || diag "$T/shmqd.log"
target_untouched
ok $? "the link at config/topics.json.tmp did not redirect the write: target untouched"
[ ! -L "$STORE/config/topics.json.tmp" ] && [ -f "$STORE/config/topics.json" ] &&
    grep -q TopicLinks "$STORE/config/topics.json"
ok $? "topics.json is a regular file listing the topic, no link left"

# ---- a FIFO at checkpoint ----------------------------------------------------------------

rm -rf "$STORE"
mkdir -p "$STORE"
chmod 750 "$STORE"
mkfifo "$STORE/checkpoint"
shmqd_once "$T/fifo.log"
[ "$RUN_RC" -ne 124 ]
ok $? "a FIFO at checkpoint: shmqd does not hang (exited within 30 s)" || diag "$T/fifo.log"
[ "$RUN_RC" -ne 0 ] && [ "$RUN_RC" -ne 124 ]
ok $? "a FIFO at checkpoint: shmqd exits with an error (status $RUN_RC)"
grep -q "$STORE/checkpoint is a FIFO" "$T/fifo.log"
ok $? "a FIFO at checkpoint: the error names it" || diag "$T/fifo.log"

# ---- a store root shmqd's user does not own, or that others may write -------------------

rm -rf "$STORE"
mkdir -p "$STORE"
chmod 755 "$T"
chown "$SEC_USER" "$STORE"
chmod 750 "$STORE"
shmqd_once "$T/owner.log"
is "$RUN_RC" "2" "a store root owned by another user: shmqd exits 2"
grep -q "store directory $STORE belongs to uid $SEC_UID" "$T/owner.log"
ok $? "the error names the root and its owner" || diag "$T/owner.log"
[ ! -e "$STORE/lock" ] && [ ! -e "$STORE/abort" ]
ok $? "nothing was created in it"

chown 0 "$STORE"
chmod 777 "$STORE"
shmqd_once "$T/writable.log"
is "$RUN_RC" "2" "a world-writable store root: shmqd exits 2"
grep -q "store directory $STORE has mode 0777: writable by others" "$T/writable.log"
ok $? "the error names the root and its mode" || diag "$T/writable.log"

chmod 750 "$STORE"
mkdir -p "$STORE/commitlog"
chmod 1777 "$STORE/commitlog"
shmqd_once "$T/sub.log"
is "$RUN_RC" "2" "a world-writable commitlog/: shmqd exits 2"
grep -q "store directory $STORE/commitlog has mode 1777" "$T/sub.log"
ok $? "the error names the directory" || diag "$T/sub.log"

done_testing
