#!/bin/sh
# A slow disk under the ConsumeQueues does not hold up dispatching: the
# dispatcher's periodic ConsumeQueue flush runs in a thread of its own
# (RocketMQ's FlushConsumeQueueService) while its loop dispatches on.  A
# fault shim (tests/fault/fail_sync.c) makes the first msync of a queue's
# first file take 10 s.  While it sleeps, messages sent one by one are each
# dispatched within 3 s and consumed, and cq_flushed does not pass the units
# that msync covers; once it returns, cq_flushed moves past them, nothing
# is fenced, and the store stops cleanly and verifies.  (With the flush in
# the dispatch loop, the first of those messages waits out the 10 s.)
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init cq-flush-slow

SHIM="$BUILD/tests/fault/libfail_sync.so"
if [ ! -f "$SHIM" ]; then
    echo "Bail out! $SHIM not built"
    exit 1
fi
cq_flushed() {
    status_json | jfield cq_flushed
}

# The first msync of the queue's first file (the flush thread's, once the file is full)
# sleeps 10 s.  mappedFileSizeConsumeQueue=6000: 300 units a file.
FIRST="/consumequeue/SlowT/0/00000000000000000000"
LD_PRELOAD="$SHIM" SHMQ_FAULT_PROG=shmq-dispatcher SHMQ_FAULT_PATH="$FIRST" SHMQ_FAULT_AFTER=0 \
    SHMQ_FAULT_DELAY_MS=10000 SHMQ_FAULT_MARK="$T/slow.mark" \
    "$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_state running 300 && wait_workers 300
ok $? "shmqd starts with a dispatcher whose first msync of $FIRST takes 10 s" ||
    diag "$T/shmqd.log"
"$CTL" topic create --store "$STORE" SlowT --queues 1 >"$T/topic.out" 2>&1
ok $? "topic SlowT with one queue" || diag "$T/topic.out"

# 350 messages: the first file fills, and the next flush pass msyncs it.
"$CTL" send --store "$STORE" $SMALL SlowT --queue 0 --count 350 --size 16 >"$T/send.out" 2>&1
ok $? "350 messages sent" || diag "$T/send.out"
i=0
while [ ! -f "$T/slow.mark" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -f "$T/slow.mark" ]
ok $? "the flush of the full first file has begun (and sleeps)" || diag "$T/shmqd.log"
t0=$(now_ms)
held=$(cq_flushed)

# Meanwhile: each message is dispatched within 3 s.
late=0
for k in 1 2 3 4 5; do
    "$CTL" send --store "$STORE" $SMALL SlowT "during-$k" --queue 0 >>"$T/send.out" 2>&1 &&
        wait_pos dispatched 30 || late=$((late + 1))
done
t1=$(now_ms)
is "$late" 0 "5 messages sent during the slow msync are each dispatched within 3 s"
[ $((t1 - t0)) -lt 9000 ]
ok $? "all of that while the msync still slept ($((t1 - t0)) ms of its 10,000)"
now=$(cq_flushed)
[ "$now" = "$held" ]
ok $? "cq_flushed stays at $held while it sleeps ($now)"
"$CTL" consume --store "$STORE" $SMALL SlowT --group SlowG --from first --count 355 \
    --timeout 20000 >"$T/consume.out" 2>"$T/consume.err"
is "$(count_lines 'body=during-' "$T/consume.out")" 5 "a consumer receives them (and the 350)" ||
    diag "$T/consume.err"

# The msync returns: cq_flushed passes the first file's units.
i=0
while [ "$(cq_flushed)" = "$held" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(cq_flushed)" -gt "$held" ]
ok $? "after the msync returned cq_flushed moved on ($held -> $(cq_flushed))"
[ "$(status_json | jfield fenced_error)" = "0" ]
ok $? "nothing is fenced"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify.out" 2>&1
ok $? "shmqctl verify passes" || diag "$T/verify.out"
done_testing
