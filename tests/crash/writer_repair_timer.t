#!/bin/sh
# A timed message (deliver at a time 1 s ahead, queue 1) is appended as a
# rmq_sys_wheel_timer message and the writer is killed before it answers
# (step offsets); its successor waits before the restart repair
# (writer-hold-repair) until the delivery time has passed.  The repair must
# not decide again, with the clock of now, what the message becomes (it
# would now be "due: an ordinary message" and be appended a second time):
# it matches the ring entry to what was stored.  Afterwards the producer's
# answer names the wheel record, the message is held once and delivered to
# its topic once (by the scheduler).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init writer-repair-timer

TOPIC=TopicTM
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
# wait_gone PATH [TENTHS]: PATH no longer exists.
wait_gone() {
    local lim=${2:-300} i=0
    while [ -e "$1" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ ! -e "$1" ]
}
# records_of KEY: "<topic> <queue id> <phys offset>" of every record with UNIQ_KEY KEY.
records_of() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
        perl -MJSON::PP -e 'my $k = shift; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
            print "$j->{topic} $j->{queue_id} $j->{phys_offset}\n" if ($j->{uniq_key} // "") eq $k }' "$1"
}
# sched_field NAME: a field of status --json's "scheduler" object.
sched_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{scheduler}{$ARGV[0]} // 0, "\n"' "$1"
}

start_broker --set timerPrecisionMs=100
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
i=0
while [ "$(worker_field scheduler state)" != running ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
[ "$(worker_field scheduler state)" = running ]
ok $? "the scheduler runs" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

touch "$CRASH/writer-offsets" "$CRASH/writer-hold-repair"
"$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --queue 1 --deliver-at +1000 \
    --timeout 30000 --async >"$T/send" 2>"$T/send.err" &
SEND=$!
bg_add $SEND
wait_gone "$CRASH/writer-offsets"
ok $? "the writer died after appending the timed message, before answering it" ||
    diag "$T/shmqd.log"
wait_file "$CRASH/writer-held-repair"
ok $? "its successor waits before the restart repair" || diag "$T/shmqd.log"
WORKER_PIDS="$WORKER_PIDS $(worker_field writer pid)"
# The delivery time passes while the writer is down.
sleep 2
[ -e "$CRASH/writer-held-repair" ]
ok $? "the delivery time has passed before the repair"
rm -f "$CRASH/writer-hold-repair"
wait_pid $SEND 600
ok $? "the send is answered OK" || {
    diag "$T/send"
    diag "$T/send.err"
}
set -- $(awk '$1 == "ok" { print $2, $3, $5 }' "$T/send")
KEY=$1
ANS_QUEUE=$2
ANS_PHYS=$3
sed "s/^/# send: /" "$T/send"
i=0
while [ "$(sched_field timer_delivered)" -lt 1 ] 2>/dev/null && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(sched_field timer_delivered)" -ge 1 ]
ok $? "the scheduler delivered the timed message" || diag "$T/shmqd.log"
grep -E "crash test|journal|answered" "$T/shmqd.log" | sed "s/^/# /"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
records_of "$KEY" >"$T/records"
sed 's/^/# record: /' "$T/records"
is "$(awk '$1 == "rmq_sys_wheel_timer"' "$T/records" | wc -l | tr -d ' ')" "1" \
    "the message is held once in rmq_sys_wheel_timer"
is "$(awk -v t=$TOPIC '$1 == t && $2 == 1' "$T/records" | wc -l | tr -d ' ')" "1" \
    "it is stored once in $TOPIC queue 1 (the scheduler's delivery)"
is "$(awk '$1 == "rmq_sys_wheel_timer" { print $2, $3 }' "$T/records")" "$ANS_QUEUE $ANS_PHYS" \
    "the answer names the record held in the wheel"
"$CTL" verify --store "$STORE" $SMALL --set timerPrecisionMs=100 >"$T/verify" 2>&1
ok $? "verify passes" || diag "$T/verify"

done_testing
