#!/bin/sh
# The scheduler (shmq-scheduler) with a short messageDelayLevel ("1s 2s 3s")
# and timerPrecisionMs=100: messages sent with a delay level are stored in
# SCHEDULE_TOPIC_XXXX queue level-1 with REAL_TOPIC/REAL_QID and tagsCode =
# delivery time, and written again to their topic when due (never before,
# soon after); messages sent with --deliver-after / --deliver-at go through
# rmq_sys_wheel_timer and the timer files; a delivery time beyond
# timerMaxDelaySec is refused with a clear error; 2000 delay-level messages
# are each delivered once, never before their due time (lateness is printed;
# its bound belongs to the benchmarks: this test must pass on a loaded
# machine, so it allows 30 s); status shows the
# scheduler's counters; delayOffset.json and the timer files hold the
# progress after a clean stop.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init scheduler-delay

# sched_field NAME: a field of status --json's "scheduler" object.
sched_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{scheduler}{$ARGV[0]}, "\n"' "$1"
}
# wait_scheduler: the scheduler runs (its pid noted for the cleanup).
wait_scheduler() {
    local i=0
    while [ $i -lt 300 ]; do
        if [ "$(worker_field scheduler state)" = running ]; then
            WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

LEVELS="messageDelayLevel=1s 2s 3s"
start_broker --set "$LEVELS" --set timerPrecisionMs=100 --set flushDelayOffsetInterval=500 \
    --set mappedFileSizeTimerLog=65536
ok $? "shmqd starts with a short level table" || diag "$T/shmqd.log"
wait_scheduler
ok $? "the scheduler runs" || diag "$T/shmqd.log"

# ---- delay levels through shmqctl --------------------------------------------------------
sent=$(now_ms)
for l in 1 2 3; do
    "$CTL" send --store "$STORE" $SMALL TopicD "level-$l" --delay-level $l >>"$T/send.out" 2>&1
done
ok $? "three messages sent with delay levels 1, 2 and 3" || diag "$T/send.out"
"$CTL" consume --store "$STORE" $SMALL TopicD --group GD --count 3 --timeout 40000 --json \
    >"$T/consume.out" 2>"$T/consume.err"
ok $? "all three delivered to TopicD" || diag "$T/consume.err"
perl -MJSON::PP -e 'my $sent = shift; my $bad = 0; my $n = 0;
    while (<STDIN>) { my $j = JSON::PP->new->decode($_); $n++;
        my ($l) = $j->{body} =~ /level-(\d)/; my $t = $j->{store_ts} - $sent;
        print "# level $l delivered $t ms after the send\n";
        if ($t < $l * 1000 || $t > $l * 1000 + 30000) {
            print "# level $l delivered $t ms after the send\n"; $bad++ } }
    exit($bad || $n != 3)' "$sent" <"$T/consume.out"
ok $? "each delivered at least its level's delay after the send (and within 30 s more)"

"$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump.json" 2>&1
perl -MJSON::PP -e 'my (%sched, %deliv);
    while (<STDIN>) { my $j = JSON::PP->new->decode($_); my $p = $j->{properties};
        if ($j->{topic} eq "SCHEDULE_TOPIC_XXXX") { $sched{$j->{body}} = $j }
        elsif ($j->{topic} eq "TopicD") { $deliv{$j->{body}} = $j } }
    my $bad = 0;
    for my $l (1 .. 3) { my $s = $sched{"level-$l"}; my $d = $deliv{"level-$l"};
        if (!$s || !$d) { print "# level $l: missing record\n"; $bad++; next }
        $bad++, print "# schedule queue\n" if $s->{queue_id} != $l - 1;
        $bad++, print "# REAL_TOPIC\n" if $s->{properties}{REAL_TOPIC} ne "TopicD";
        $bad++, print "# REAL_QID\n" if $s->{properties}{REAL_QID} ne $d->{queue_id};
        $bad++, print "# DELAY kept\n" if exists $d->{properties}{DELAY};
        $bad++, print "# uniq key\n" if $s->{uniq_key} ne $d->{uniq_key};
        $bad++, print "# early\n" if $d->{store_ts} < $s->{store_ts} + $l * 1000 }
    exit $bad' <"$T/dump.json"
ok $? "schedule records in queue level-1 with REAL_TOPIC/REAL_QID; delivered copies keep the UNIQ_KEY, lose DELAY"

"$CTL" dump --store "$STORE" $SMALL consumequeue SCHEDULE_TOPIC_XXXX 1 --json >"$T/cq.json" 2>&1
perl -MJSON::PP -e 'my ($cq, $dump) = @ARGV; open(my $f, "<", $cq) or exit 1;
    my $u = JSON::PP->new->decode(scalar <$f>); open(my $d, "<", $dump) or exit 1;
    while (<$d>) { my $j = JSON::PP->new->decode($_);
        exit($u->{tags_code} == $j->{store_ts} + 2000 ? 0 : 1) if $j->{phys_offset} == $u->{phys_offset} }
    exit 1' "$T/cq.json" "$T/dump.json"
ok $? "the level-2 unit's tagsCode is its delivery time (store time + 2 s)"

"$CTL" send --store "$STORE" $SMALL TopicD x --delay-level 4 >"$T/out" 2>&1
is "$?" "2" "a level beyond the store's table is refused by shmqctl"
grep -q "3 delay levels" "$T/out"
ok $? "naming the store's level count" || diag "$T/out"

# ---- delivery at a time ---------------------------------------------------------------------
sent=$(now_ms)
"$CTL" send --store "$STORE" $SMALL TopicT after --deliver-after 1500 >"$T/t.out" 2>&1 &&
    "$CTL" send --store "$STORE" $SMALL TopicT at --deliver-at $((sent + 2500)) >>"$T/t.out" 2>&1
ok $? "messages sent with --deliver-after 1500 and --deliver-at now+2500" || diag "$T/t.out"
"$CTL" consume --store "$STORE" $SMALL TopicT --group GT --count 2 --timeout 6000 --json \
    >"$T/tc.out" 2>"$T/tc.err"
ok $? "both delivered to TopicT" || diag "$T/tc.err"
perl -MJSON::PP -e 'my $sent = shift; my $bad = 0;
    while (<STDIN>) { my $j = JSON::PP->new->decode($_);
        my $want = $j->{body} eq "after" ? 1500 : 2500; my $t = $j->{store_ts} - $sent;
        if ($t < $want - 100 || $t > $want + 1000) { print "# $j->{body}: $t ms\n"; $bad++ } }
    exit $bad' "$sent" <"$T/tc.out"
ok $? "each delivered at its time (precision 100 ms), not before"
"$CTL" dump --store "$STORE" $SMALL commitlog --json 2>/dev/null |
    perl -MJSON::PP -e 'my $n = 0; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
        next unless $j->{topic} eq "rmq_sys_wheel_timer"; $n++;
        exit 1 unless $j->{properties}{TIMER_OUT_MS} % 100 == 0 && $j->{properties}{REAL_TOPIC} eq "TopicT" }
        exit($n == 2 ? 0 : 1)'
ok $? "timed messages were held as rmq_sys_wheel_timer records, TIMER_OUT_MS on the 100 ms grid"
[ -f "$STORE/timerwheel" ] && [ "$(stat -c %s "$STORE/timerwheel")" = 38707200 ] &&
    [ "$(stat -c %s "$STORE/config/timercheck")" = 4096 ] && [ -d "$STORE/timerlog" ]
ok $? "timer files exist with RocketMQ's sizes (timerwheel 38707200, timercheck 4096, timerlog/)"

"$CTL" send --store "$STORE" $SMALL TopicT far --deliver-after 259201000 >"$T/out" 2>&1
is "$?" "1" "a delivery beyond timerMaxDelaySec (3 days) is refused"
grep -q "timerMaxDelaySec" "$T/out"
ok $? "with an error naming timerMaxDelaySec" || diag "$T/out"
"$CTL" send --store "$STORE" $SMALL TopicT both --deliver-after 10 --delay-level 1 >"$T/out" 2>&1
is "$?" "2" "--delay-level with --deliver-after is a usage error"

# ---- 2000 delay-level messages: each on time -------------------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicL --queues 1 >"$T/out" 2>&1
"$HELPERS/sched_load" recv "$STORE" TopicL GL --count 2000 --timeout 15000 >"$T/lr.out" \
    2>"$T/lr.err" &
R=$!
bg_add $R
"$HELPERS/sched_load" send "$STORE" TopicL --count 2000 --level 1 --level-ms 1000 --queue 0 \
    >"$T/ls.out" 2>"$T/ls.err"
ok $? "2000 messages sent with delay level 1" || diag "$T/ls.err"
wait_pid $R 300
ok $? "all 2000 delivered" || diag "$T/lr.err"
summary=$(grep '^summary' "$T/lr.out")
echo "# $summary"
echo "$summary" | perl -ne 'exit(/dups=0 .*max_late=(-?\d+) min_late=(-?\d+)/ && $1 <= 30000 && $2 >= 0 ? 0 : 1)'
ok $? "none twice, none early (lateness in the summary above; bounded by 30 s here)"
is "$(sched_field delay_delivered)" "2003" "status: scheduler.delay_delivered counts them"
is "$(sched_field timer_delivered)" "2" "status: scheduler.timer_delivered counts the timed ones"
"$CTL" status --store "$STORE" $SMALL | grep -q '^scheduler: delayed 2003 delivered'
ok $? "status text has a scheduler line"

# ---- progress after a clean stop --------------------------------------------------------------
stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1; my $t = <$f>;
    $t =~ s/([{,]\s*)(\d+)\s*:/$1"$2":/g; my $j = JSON::PP->new->decode($t)->{offsetTable};
    exit($j->{1} == 2001 && $j->{2} == 1 && $j->{3} == 1 ? 0 : 1)' "$STORE/config/delayOffset.json"
ok $? "delayOffset.json: next offsets 2001, 1, 1 for levels 1, 2, 3" ||
    diag "$STORE/config/delayOffset.json"
grep -q "scheduler.*exiting with status 0" "$T/shmqd.log"
ok $? "the scheduler exited 0"

done_testing
