#!/bin/sh
# The scheduler killed while it delivers.  First at fixed points
# (SHMQ_TEST_CRASH_DIR, see daemons/scheduler.c): right after a batch of
# deliveries was acknowledged and before its progress was saved, for delay
# levels and for the timer; then with kill -9 at a random moment while
# messages are being delivered.  Each time the master restarts it; every
# message is delivered, and a message is delivered twice only if the kill
# fell between its re-write and the saving of its progress, which both
# store as each batch is acknowledged (timer: config/timercheck, delay
# levels: config/delaycheck): at most the batch in flight (256).  The
# delayOffset.json save interval is a minute, so that without the
# delaycheck every delay-level message delivered before the kill would
# come twice.  The duplicates are counted and reported.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init scheduler-kill

CRASH="$T/crash"
mkdir -p "$CRASH"
SHMQ_TEST_CRASH_DIR="$CRASH"
export SHMQ_TEST_CRASH_DIR
sched_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{scheduler}{$ARGV[0]}, "\n"' "$1"
}
# dups_since FILE KILL_MS WINDOW_MS: duplicates in sched_load --lines output FILE, and
# how many of them were first delivered earlier than KILL_MS - WINDOW_MS.
dups_since() {
    awk -v kill="$2" -v win="$3" '$1 == "msg" { if ($2 in first) { d++; if (first[$2] < kill - win) old++ }
        else first[$2] = $4 } END { printf "%d %d\n", d, old }' "$1"
}

start_broker --set "messageDelayLevel=1s 2s" --set timerPrecisionMs=100 \
    --set flushDelayOffsetInterval=60000 --set mappedFileSizeTimerLog=1048576 \
    --set mappedFileSizeCommitLog=4194304 --set mappedFileSizeConsumeQueue=60000
ok $? "shmqd starts" || diag "$T/shmqd.log"
WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
for t in TopicA TopicB TopicC TopicD; do
    "$CTL" topic --store "$STORE" $SMALL create $t --queues 1 >>"$T/topics.out" 2>&1
done

# crash_run NAME TOPIC STEP SEND-ARGS...: consume TOPIC, send, kill at STEP; leaves $T/NAME.recv.
crash_run() {
    local name=$1 topic=$2 step=$3 old
    shift 3
    old=$(worker_pid scheduler)
    touch "$CRASH/scheduler-$step"
    "$HELPERS/sched_load" recv "$STORE" $topic G$name --count 3000 --timeout 8000 --lines \
        >"$T/$name.recv" 2>"$T/$name.err" &
    R=$!
    bg_add $R
    "$HELPERS/sched_load" send "$STORE" $topic --count 3000 --queue 0 "$@" >"$T/$name.send" 2>&1
    ok $? "$name: 3000 messages sent" || diag "$T/$name.send"
    wait_restarted scheduler "$old" 300
    ok $? "$name: the scheduler died at $step and was restarted" || diag "$T/shmqd.log"
    WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
    wait_pid $R 400
    ok $? "$name: all 3000 delivered" || diag "$T/$name.err"
    echo "# $name: $(grep '^summary' "$T/$name.recv")"
}

# ---- at fixed points -------------------------------------------------------------------------
crash_run timer TopicA timer-acked --at-from 1500 --at-span 0
d=$(dups_since "$T/timer.recv" 0 0 | cut -d' ' -f1)
is "$d" "256" "timer: exactly the acknowledged batch (256) delivered twice"

crash_run delay TopicB delay-acked --level 1 --level-ms 1000
d=$(dups_since "$T/delay.recv" 0 0 | cut -d' ' -f1)
[ "$d" -ge 1 ] && [ "$d" -le 256 ]
ok $? "delay level: only the acknowledged batch delivered twice ($d)"
rm -f "$CRASH"/scheduler-*

# ---- kill -9 at a random moment --------------------------------------------------------------
# kill_run NAME TOPIC COUNTER SEND-ARGS...: messages delivered over ~2 s; kill -9 in the middle.
kill_run() {
    local name=$1 topic=$2 counter=$3 old before i
    shift 3
    before=$(sched_field "$counter")
    "$HELPERS/sched_load" recv "$STORE" $topic G$name --count 4000 --timeout 8000 --lines \
        >"$T/$name.recv" 2>"$T/$name.err" &
    R=$!
    bg_add $R
    "$HELPERS/sched_load" send "$STORE" $topic --count 4000 --queue 0 "$@" >"$T/$name.send" 2>&1
    ok $? "$name: 4000 messages sent" || diag "$T/$name.send"
    i=0
    while [ "$(($(sched_field "$counter") - before))" -lt 1000 ] && [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    old=$(worker_pid scheduler)
    KILL_MS=$(now_ms)
    kill -KILL "$old"
    echo "# $name: killed after $(($(sched_field "$counter") - before)) deliveries"
    wait_restarted scheduler "$old" 300
    ok $? "$name: restarted after kill -9" || diag "$T/shmqd.log"
    WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
    wait_pid $R 400
    ok $? "$name: all 4000 delivered" || diag "$T/$name.err"
    echo "# $name: $(grep '^summary' "$T/$name.recv")"
}

kill_run tkill TopicC timer_delivered --at-from 1500 --at-span 2000
set -- $(dups_since "$T/tkill.recv" "$KILL_MS" 0)
echo "# timer kill: $1 duplicates"
[ "$1" -le 256 ]
ok $? "timer: at most the batch in flight delivered twice ($1)"

kill_run dkill TopicD delay_delivered --level 1 --level-ms 1000 --rate 2000
set -- $(dups_since "$T/dkill.recv" "$KILL_MS" 0)
echo "# delay kill: $1 duplicates"
[ "$1" -le 256 ]
ok $? "delay levels: at most the batch in flight delivered twice ($1)"
grep -q "delay level 1: resuming at offset [0-9]* (config/delaycheck" "$T/shmqd.log"
ok $? "the restarted scheduler resumed from config/delaycheck" || diag "$T/shmqd.log"

grep -c "crash test: killed" "$T/shmqd.log" | grep -q '^2$'
ok $? "both crash points were hit"
stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
done_testing
