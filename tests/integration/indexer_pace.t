#!/bin/sh
# The indexer paces itself under a steady stream: a turn that indexed
# records is followed by a pause of INDEXER_PACE_US (2 ms) before the next
# one, so that it takes what came meanwhile in one batch instead of waking
# for every batch the writer publishes (each wake a futex wait and a
# context switch, microseconds of system time each in a VM).  At 20,000
# messages a second it sleeps at most about once a millisecond (unpaced:
# about 11 times), and every message is still indexed and found by its key.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init indexer-pace

# switches PID: the voluntary context switches of PID so far (each sleep is one).
switches() {
    awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status"
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
IDX=$(worker_pid indexer)
[ -n "$IDX" ] && [ -r "/proc/$IDX/status" ]
ok $? "the indexer runs (pid $IDX)"

"$CTL" topic create --store "$STORE" BenchTopic --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

s0=$(switches "$IDX")
t0=$(now_ms)
"$BUILD/shmq-bench" e2e --store "$STORE" --topic BenchTopic --rate 20000 --size 128 \
    --seconds 3 --inflight 64 --json >"$T/e2e.json" 2>"$T/e2e.err"
ok $? "shmq-bench e2e sends at 20,000 msg/s for 3 s" || diag "$T/e2e.err"
t1=$(now_ms)
s1=$(switches "$IDX")
sent=$(perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); print $j->{extra}{acked}' \
    <"$T/e2e.json")
[ "${sent:-0}" -ge 30000 ]
ok $? "at least 30,000 messages acknowledged ($sent)"
# At most one sleep per millisecond of the run: the pace allows one per 2 ms, plus a sleep
# on the wake word when a pause ended with nothing new (the run's start and end).
# Unpaced, the same run makes about 11 per millisecond.
sleeps=$((s1 - s0))
ms=$((t1 - t0))
[ "$sleeps" -le "$ms" ]
ok $? "the indexer slept $sleeps times in $ms ms: at most once per millisecond"

# Paced, nothing is left behind: every record is indexed, the last message is found.
wait_pos indexed
ok $? "positions.indexed reaches positions.wrote"
"$CTL" send --store "$STORE" BenchTopic "last body" --keys "pace-last" >"$T/send.out" 2>&1
ok $? "one more message with a key" || diag "$T/send.out"
wait_pos indexed
"$CTL" query --store "$STORE" --topic BenchTopic --key pace-last --json >"$T/q.out" 2>&1
is "$(jfield body <"$T/q.out")" "last body" "it is found by its key after a paused turn"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
