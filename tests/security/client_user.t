#!/bin/sh
# Unix permissions decide who may be a client of a store.  The store's
# group (clientUnixGroup: here the group of the store root, made set-group-ID
# so that every file inherits it) may produce and consume; another user
# without that group can read no file, cannot reach the socket and cannot
# open the control block, each with a clear error; a process that reaches
# the socket without the group is refused by the master naming the rule.  A
# member produces through the socket and consumes, yet can write neither the
# control block nor the consumer area.  Skipped unless run as root (it
# creates a user and a group).  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (creates a user and a group)"
    exit 0
fi
. "${SHMQ_SRC:-/work/main}/tests/security/common.sh"
broker_init sec-client
sec_user_init
sec_group_store shmqclients

# as_member CMD...: run CMD as $SEC_USER with $GROUP as a supplementary group.
as_member() {
    perl -e 'my ($u, $g) = (shift, shift); my @p = getpwnam($u) or die "no user $u\n";
        $( = $p[3]; $) = "$p[3] $p[3] $g"; $< = $> = $p[2]; exec @ARGV or exit 127' \
        "$SEC_USER" "$GID" "$@"
}

start_broker
ok $? "shmqd starts on a store whose root belongs to group $GROUP" || diag "$T/shmqd.log"
grep -q "clients register at $STORE/shmq.sock (group $GROUP)" "$T/shmqd.log"
ok $? "the master names its socket and client group" || diag "$T/shmqd.log"
is "$(stat -c '%a %G' "$STORE/shmq.sock")" "660 $GROUP" "the socket is 0660, group $GROUP"
SHM=$(ctl_shm_name)
is "$(stat -c '%a %G' "/dev/shm/$SHM")" "640 $GROUP" "the control block is 0640, group $GROUP"
is "$(stat -c '%a %G' "/dev/shm/$SHM.cons")" "640 $GROUP" "the consumer area is 0640, group $GROUP"
is "$(stat -c '%a %G' "/dev/shm/$SHM.wake")" "660 $GROUP" "the wake-up object is 0660, group $GROUP"
"$CTL" send --store "$STORE" $SMALL TopicC "from-root" --count 5 >"$T/send0.out" 2>&1
ok $? "the store's user sends 5 messages" || diag "$T/send0.out"

# ---- without the group ------------------------------------------------------------------------
as_user cat "$STORE/commitlog/00000000000000000000" >/dev/null 2>"$T/cat.err"
ok $((! $?)) "user $SEC_USER cannot read a CommitLog file"
as_user "$CTL" send --store "$STORE" $SMALL TopicC "intruder" >"$T/nsend.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "Permission denied" "$T/nsend.out"
ok $? "user $SEC_USER cannot produce: Permission denied ($(head -c 160 "$T/nsend.out"))" ||
    diag "$T/nsend.out"
as_user perl -e 'open(my $f, "<", $ARGV[0]) and exit 1; print "$!\n"; exit 0' "/dev/shm/$SHM" \
    >"$T/nopen.out" 2>&1
ok $? "user $SEC_USER cannot open the control block ($(cat "$T/nopen.out"))"
# The socket made reachable on purpose: the master itself refuses, naming the rule.
chmod 0666 "$STORE/shmq.sock"
chmod 2751 "$STORE"
as_user "$HELPERS/hostile_consumer" commit "$STORE" G TopicC 0 0 >"$T/peer.out" 2>&1
is "$?" "3" "with the socket reachable, the master refuses user $SEC_USER"
grep -q "uid $SEC_UID ($SEC_USER) is not in group $GROUP (clientUnixGroup)" "$T/peer.out"
ok $? "naming the rule ($(head -c 160 "$T/peer.out"))" || diag "$T/peer.out"
grep -q "client pid [0-9]* refused: uid $SEC_UID ($SEC_USER) is not in group $GROUP" "$T/shmqd.log"
ok $? "and logs the refusal" || diag "$T/shmqd.log"
chmod 0660 "$STORE/shmq.sock"
chmod 2750 "$STORE"

# ---- with the group -----------------------------------------------------------------------------
as_member "$CTL" send --store "$STORE" $SMALL TopicC "from-member" --count 5 >"$T/msend.out" 2>&1
ok $? "a member of $GROUP produces through the socket" || diag "$T/msend.out"
as_member "$HELPERS/consume" "$STORE" TopicC GroupM --count 10 --timeout 20000 >"$T/mcons.out" \
    2>"$T/mcons.err"
ok $? "and consumes all 10 messages, committing through the socket" || diag "$T/mcons.err"
is "$(grep -c '^msg ' "$T/mcons.out")" "10" "exactly 10 messages, each once"
as_member "$HELPERS/hostile_consumer" scribble "$STORE" >"$T/mscribble.out" 2>&1
ok $? "a member can write neither the control block nor the consumer area" ||
    diag "$T/mscribble.out"
grep -q "refused control block: open /$SHM O_RDWR: Permission denied" "$T/mscribble.out"
ok $? "opening the control block O_RDWR is refused to the member" || diag "$T/mscribble.out"
grep -q "refused consumer area: open /$SHM.cons O_RDWR: Permission denied" "$T/mscribble.out"
ok $? "opening the consumer area O_RDWR is refused to the member" || diag "$T/mscribble.out"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
    exit(($j->{offsetTable}{"TopicC\@GroupM"} || {}) ? 0 : 1)' <"$STORE/config/consumerOffset.json"
ok $? "the member's group offsets were saved" || diag "$STORE/config/consumerOffset.json"

done_testing
