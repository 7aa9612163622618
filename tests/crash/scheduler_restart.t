#!/bin/sh
# The whole store restarted with delayed and timed messages pending: after
# a clean stop and a new start every pending message is delivered once, not
# before its time; after kill -9 of the master and every worker (abnormal
# recovery at the next start) likewise, none lost.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init scheduler-restart

CONF="--set timerPrecisionMs=100 --set mappedFileSizeTimerLog=65536"
# The level of 3 s (--set splits values at spaces: give it whole).
LEVELS="messageDelayLevel=1s 3s"

start_pending() {
    start_broker --set "$LEVELS" $CONF
    local rc=$?
    ok $rc "$1: shmqd runs"
    [ $rc -eq 0 ] || diag "$T/shmqd.log"
    WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
}
# send_pending NAME: 300 messages of level 2 (3 s) to D$NAME, 300 due in 3.5 s to T$NAME.
send_pending() {
    "$HELPERS/sched_load" send "$STORE" "D$1" --count 300 --level 2 --level-ms 3000 \
        >"$T/$1.dsend" 2>&1 &&
        "$HELPERS/sched_load" send "$STORE" "T$1" --count 300 --after 3500 >"$T/$1.tsend" 2>&1
    ok $? "$1: 300 delayed and 300 timed messages sent" || diag "$T/$1.dsend"
}
# check_delivered NAME [KILL_MS]: both topics delivered whole, none early, none twice; with
# KILL_MS, a message may come twice if its first copy was stored before that kill, at most a
# batch in flight (256): one the scheduler re-wrote before the store of its progress is
# delivered again after the restart (docs/architecture.md, crash rules).  On a slow machine the
# sends and the wait for the wheel can outlast the 3 s level, so some are due before the kill.
check_delivered() {
    local t s
    for t in D T; do
        "$HELPERS/sched_load" recv "$STORE" "$t$1" G --count 300 --timeout 30000 --lines \
            >"$T/$1.$t.recv" 2>"$T/$1.$t.err"
        ok $? "$1: all 300 of $t$1 delivered" || diag "$T/$1.$t.err"
        s=$(grep '^summary' "$T/$1.$t.recv")
        echo "# $1 $t: $s"
        perl -e 'my $kill = shift @ARGV; my (%first, $early, $bad, $twice);
            while (<STDIN>) {
                if (/^msg (\d+) (\d+) (\d+) \d+ \S+ (\d+)$/) {
                    my ($i, $due, $arrival, $st) = ($1, $2, $3, $4);
                    if (!exists $first{$i}) { $first{$i} = $st; $early++ if $arrival < $due; next }
                    $twice++;
                    $bad++ unless length $kill && $first{$i} < $kill;
                }
            }
            printf "# %d twice (%d not explained by the kill), %d early\n", $twice // 0,
                $bad // 0, $early // 0;
            exit($bad || $early || ($twice // 0) > 256 || !%first ? 1 : 0)' "${2:-}" \
            <"$T/$1.$t.recv"
        ok $? "$1: $t$1 none early, none twice but a batch re-written before a kill"
    done
}

sched_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{scheduler}{$ARGV[0]}, "\n"' "$1"
}
# wait_enqueued N: the scheduler put N timed messages in the wheel so far (a generous bound:
# a loaded machine is slow, and the test asserts what happens, not how fast).
wait_enqueued() {
    local i=0
    while [ "$(sched_field timer_enqueued)" != "$1" ] && [ $i -lt 600 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ "$(sched_field timer_enqueued)" = "$1" ]
}

# ---- clean stop with messages pending ---------------------------------------------------------
start_pending clean
send_pending clean
wait_enqueued 300
ok $? "the timed messages are in the wheel"
stop_broker
ok $? "clean stop with 600 messages pending" || diag "$T/shmqd.log"
[ -f "$STORE/config/delayOffset.json" ] && [ -f "$STORE/config/timercheck" ] &&
    [ -f "$STORE/timerwheel" ]
ok $? "progress files are there: delayOffset.json, timercheck, timerwheel"
start_pending clean
check_delivered clean

# ---- kill -9 of everything with messages pending -----------------------------------------------
send_pending killed
wait_enqueued 300
ok $? "the timed messages are in the wheel"
pids="$(all_worker_pids) $SHMQD_PID"
kill_ms=$(now_ms)
kill -KILL $pids 2>/dev/null
for p in $pids; do
    wait_pid "$p" 50 2>/dev/null
done
SHMQD_PID=""
start_pending killed
grep -q "recovery (abnormal" "$T/shmqd.log"
ok $? "the new start recovered abnormally"
check_delivered killed "$kill_ms"

stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
done_testing
