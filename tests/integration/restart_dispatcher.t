#!/bin/sh
# `shmqctl restart dispatcher`, several times while producers send and a
# consumer reads: each restart gives a new dispatcher pid and the store keeps
# running; the consumer sees contiguous queue offsets (no gap, no duplicate)
# and every acknowledged message; after a clean stop verify passes and every
# ConsumeQueue holds exactly one unit per record, in order.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init restart-dispatcher

TOPIC=TopicRD
RESTARTS=4

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 3 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group GR --idle-ms 3000 \
    --stop-file "$T/producers.done" --max-ms 55000 >"$T/c" 2>"$T/c.err" &
CPID=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 500 \
    --size 100 --size-max 2000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 1000000 --rate 500 \
    --size 100 --size-max 2000 --async 8 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$CPID $P1 $P2"
sleep 1

ndone=0
for r in $(seq 1 $RESTARTS); do
    old=$(worker_pid dispatcher)
    "$CTL" restart --store "$STORE" $SMALL dispatcher >"$T/r$r" 2>&1
    rc=$?
    new=$(worker_field dispatcher pid)
    if [ $rc -eq 0 ] && [ -n "$new" ] && [ "$new" != "$old" ]; then
        ndone=$((ndone + 1))
        WORKER_PIDS="$WORKER_PIDS $new"
    else
        diag "$T/r$r"
    fi
    sleep 0.8
done
is "$ndone" "$RESTARTS" "shmqctl restart dispatcher gave a new dispatcher $RESTARTS times"
is "$(worker_field dispatcher state)" "running" "the dispatcher runs"
is "$(store_state)" "running" "the store kept running"
grep -q "restart of the dispatcher requested" "$T/shmqd.log"
ok $? "the master logged the requests" || diag "$T/shmqd.log"

kill -TERM $P1 $P2
wait_pid $P1 300
ok $? "producer 1 had every send acknowledged" || { grep ERR "$T/p1" | head -n 5 >"$T/bad"; diag "$T/bad"; }
wait_pid $P2 300
ok $? "producer 2 (async) had every send acknowledged" || { grep ERR "$T/p2" | head -n 5 >"$T/bad"; diag "$T/bad"; }
touch "$T/producers.done"
acked_keys "$T/p1" "$T/p2" >"$T/acked"
NACK=$(wc -l <"$T/acked" | tr -d ' ')

wait_pid $CPID 600
ok $? "the consumer saw contiguous queue offsets and whole messages" ||
    { grep BAD "$T/c" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/c.err"; }
awk '$1 == "MSG" { print $4 }' "$T/c" | sort >"$T/consumed"
cmp -s "$T/acked" "$T/consumed"
ok $? "the consumer got exactly the $NACK acknowledged messages, each once"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes: no gap and no duplicate in any ConsumeQueue" || diag "$T/verify"
units=0
for q in 0 1 2; do
    "$CTL" dump --store "$STORE" $SMALL consumequeue $TOPIC $q --json >"$T/cq$q" 2>"$T/cq$q.err"
    perl -MJSON::PP -e 'my $want = 0; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
        exit 1 unless $j->{queue_offset} == $want++ && $j->{match} }' <"$T/cq$q"
    ok $? "queue $q: units contiguous from 0, each matching its record" || diag "$T/cq$q.err"
    units=$((units + $(wc -l <"$T/cq$q")))
done
is "$units" "$NACK" "one unit per acknowledged message"

done_testing
