#!/bin/sh
# A producer waiting for its answer when the store fails is answered from
# what was stored.  The writer appends a message and holds before answering
# (writer-hold-offsets); a second message is published behind it; then the
# store is fenced (as by a failed flush: state failed, the master stops
# every worker).  The first producer must not be told "stopped before
# taking the message" for a message that is stored: it waits until the
# writer has finished its batch and gets SEND_OK with the record's offset.
# The second message, never taken, is answered with -ESHUTDOWN and is not
# stored.  ASYNC_FLUSH: an acknowledgement needs no flush.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init writer-failed-answer

TOPIC=TopicFA
CRASH="$T/crash"
mkdir -p "$CRASH"
SHMQ_TEST_CRASH_DIR="$CRASH"
export SHMQ_TEST_CRASH_DIR

# wait_file PATH [TENTHS]: PATH exists (0) or the limit passed (1).
wait_file() {
    local lim=${2:-300} i=0
    while [ ! -e "$1" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e "$1" ]
}
# records_of KEY: "<topic> <queue id> <phys offset>" of every record with UNIQ_KEY KEY.
records_of() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
        perl -MJSON::PP -e 'my $k = shift; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
            print "$j->{topic} $j->{queue_id} $j->{phys_offset}\n" if ($j->{uniq_key} // "") eq $k }' "$1"
}

start_broker --set flushDiskType=ASYNC_FLUSH
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 2 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

touch "$CRASH/writer-hold-offsets"
"$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --queue 0 --timeout 30000 \
    >"$T/s1" 2>"$T/s1.err" &
S1=$!
bg_add $S1
wait_file "$CRASH/writer-held-offsets"
ok $? "the writer appended the first message and holds before answering" || diag "$T/shmqd.log"
"$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --queue 1 --timeout 30000 \
    >"$T/s2" 2>"$T/s2.err" &
S2=$!
bg_add $S2
wait_line "$T/s2" '^attached'

# Once both rings hold entries not given back: the second message is published.
"$HELPERS/fence_store" --store "$STORE" --pending 2 >"$T/fence" 2>&1
ok $? "the second message is published behind the held batch; the store is fenced" ||
    diag "$T/fence"
wait_state failed 300
ok $? "the store state is failed" || diag "$T/shmqd.log"
# Every waiting producer has looked at the state several times by now.
sleep 1
[ -e "$CRASH/writer-held-offsets" ] && ! grep -q "^ok\\|^err" "$T/s1"
ok $? "no answer for the first message while the writer still holds its batch" || diag "$T/s1"
rm -f "$CRASH/writer-hold-offsets"

wait_pid $S1 600
ok $? "the first message is answered OK" || diag "$T/s1"
wait_pid $S2 600
grep -q '^err -108 ' "$T/s2"
ok $? "the second message, never taken, is answered -ESHUTDOWN" || diag "$T/s2"
wait_pid "$SHMQD_PID" 600
SHMQD_PID=""
grep -E "crash test|failed|exiting" "$T/shmqd.log" | sed "s/^/# /"

set -- $(awk '$1 == "ok" { print $2, $5 }' "$T/s1")
K1=$1
PHYS1=$2
K2=$(awk '$1 == "err" { print $3 }' "$T/s2")
records_of "$K1" >"$T/r1"
is "$(cat "$T/r1")" "$TOPIC 0 $PHYS1" "the first message is stored once, where its answer says"
[ -n "$K2" ] && [ "$K2" != "-" ]
ok $? "the second message's answer names its key ($K2)"
records_of "$K2" >"$T/r2"
is "$(wc -l <"$T/r2" | tr -d ' ')" "0" "the second message is not stored"

done_testing
