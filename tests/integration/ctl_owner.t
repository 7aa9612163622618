#!/bin/sh
# The control block's shared-memory names (/dev/shm/shmq-<hash> and its
# .cons) are predictable: while the store is stopped another local user may
# create them first.  Proves: shmqd refuses to start when either object
# exists and belongs to another user, with a log line naming the object and
# its owner, and leaves that object as it was (never opened, truncated or
# replaced); an object of the store's own user (left by a master that died)
# is replaced as before, and the store runs.
# Needs root (to give an object to another user); otherwise a TAP skip.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init ctl-owner

if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root to make an object of another user"
    exit 0
fi
OTHER=65534 # nobody
OTHER_NAME=$(getent passwd $OTHER | cut -d: -f1)

mkdir -p "$STORE" && chmod 0750 "$STORE"
NAME=$(ctl_shm_name)
[ -n "$NAME" ]
ok $? "the control block's name for the store: /dev/shm/$NAME"

# squat FILE OWNER: create /dev/shm/FILE with known content, owned by OWNER.
squat() {
    printf 'squatted by uid %s\n' "$2" >"/dev/shm/$1" && chown "$2" "/dev/shm/$1" &&
        chmod 0644 "/dev/shm/$1"
}
# untouched FILE OWNER: the object is still there, its owner's, with its content.
untouched() {
    [ "$(stat -c %u "/dev/shm/$1" 2>/dev/null)" = "$2" ] &&
        [ "$(cat "/dev/shm/$1" 2>/dev/null)" = "squatted by uid $2" ]
}
# refused FILE: shmqd exits by itself without the store ever running, and
# logs a line naming FILE and its owner.
refused() {
    : >"$T/shmqd.log"
    "$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
    local pid=$!
    wait_pid $pid 300
    local rc=$?
    [ "$rc" -ne 0 ] && ! grep -q 'state: recovering -> running\|state: .* -> running' "$T/shmqd.log" &&
        grep -q "control block /dev/shm/$1 already exists and belongs to $OTHER_NAME (uid $OTHER), not to the store's user" \
            "$T/shmqd.log"
}

# ---- another user's objects ----------------------------------------------------------------
squat "$NAME" $OTHER
refused "$NAME"
ok $? "shmqd refuses to start: the control block object belongs to another user" ||
    diag "$T/shmqd.log"
untouched "$NAME" $OTHER
ok $? "and leaves that object as it was"
rm -f "/dev/shm/$NAME"

squat "$NAME.cons" $OTHER
refused "$NAME.cons"
ok $? "the same for the consumer area's object (.cons)" || diag "$T/shmqd.log"
untouched "$NAME.cons" $OTHER
ok $? "and leaves that object as it was"
[ ! -e "/dev/shm/$NAME" ]
ok $? "nor does it leave a control block of its own behind"
rm -f "/dev/shm/$NAME.cons"

# ---- the store's own stale objects are replaced ---------------------------------------------
squat "$NAME" 0
squat "$NAME.cons" 0
: >"$T/shmqd.log"
start_broker
ok $? "objects of the store's own user are replaced: the store runs" || diag "$T/shmqd.log"
[ "$(stat -c %s "/dev/shm/$NAME")" -gt 1000000 ]
ok $? "with a control block of its own"
"$CTL" send --store "$STORE" $SMALL TopicA hello >"$T/send.out" 2>&1
ok $? "and takes messages" || diag "$T/send.out"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
