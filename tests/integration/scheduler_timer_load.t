#!/bin/sh
# Delivery at a time under load: 10,000 messages sent with deliver_at_ms,
# due over three seconds starting three seconds later (all of them pending
# in the timer wheel at once), with timerPrecisionMs=100.  Each must reach
# its consumer once and no earlier than its due time (the consumer notes the
# wall time each arrives; the due time is in the body).  The lateness is
# printed, not bounded tightly: on a loaded machine it grows, and its bound
# (precision + 100 ms) is a benchmark figure (docs/performance.md), not a
# test; here 30 s.
# Ordinary sends go on meanwhile (their rate is reported).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init scheduler-timer-load

N=10000
sched_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{scheduler}{$ARGV[0]}, "\n"' "$1"
}

start_broker --set timerPrecisionMs=100 --set mappedFileSizeTimerLog=1048576 \
    --set mappedFileSizeCommitLog=8388608 --set mappedFileSizeConsumeQueue=120000
ok $? "shmqd starts with timerPrecisionMs=100" || diag "$T/shmqd.log"
WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
"$CTL" topic --store "$STORE" $SMALL create TopicW --queues 1 >"$T/out" 2>&1
ok $? "a one-queue topic" || diag "$T/out"

"$HELPERS/sched_load" recv "$STORE" TopicW GW --count $N --timeout 20000 >"$T/recv.out" \
    2>"$T/recv.err" &
R=$!
bg_add $R
"$HELPERS/sched_load" send "$STORE" TopicW --count $N --at-from 3000 --at-span 3000 --queue 0 \
    >"$T/send.out" 2>"$T/send.err"
ok $? "$N timed messages sent" || diag "$T/send.err"
read -r _ sent _ first_due _ last_due _ done_ms <"$T/send.out"
echo "# sends acknowledged $((first_due - done_ms)) ms before the first was due"

i=0
while [ "$(sched_field timer_enqueued)" != "$N" ] && [ $i -lt 50 ]; do
    sleep 0.05
    i=$((i + 1))
done
pending=$(sched_field timer_pending)
[ "$(now_ms)" -lt "$first_due" ]
early=$?
is "$pending" "$N" "all $N pending in the wheel at once (status timer_pending)"
[ $early -eq 0 ]
ok $? "seen before the first was due"

# Sending ordinary messages while they are pending.
"$CTL" send --store "$STORE" $SMALL TopicO --count 5000 --size 100 --async 64 >"$T/o.out" 2>&1
ok $? "5000 ordinary messages sent meanwhile" || diag "$T/o.out"
echo "# with $N pending: $(tail -n 1 "$T/o.out")"

wait_pid $R 300
ok $? "all $N delivered" || diag "$T/recv.err"
summary=$(grep '^summary' "$T/recv.out")
echo "# $summary"
echo "$summary" | perl -ne 'exit(/dups=0 / ? 0 : 1)'
ok $? "none delivered twice"
echo "$summary" | perl -ne 'exit(/min_late=(-?\d+)/ && $1 >= 0 ? 0 : 1)'
ok $? "none delivered before its time"
echo "$summary" | perl -ne 'exit(/max_late=(-?\d+)/ && $1 <= 30000 ? 0 : 1)'
ok $? "each delivered (lateness in the summary above; bounded by 30 s here)"
is "$(sched_field timer_delivered)" "$N" "status: timer_delivered"
is "$(sched_field timer_pending)" "0" "status: nothing pending"

stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
done_testing
