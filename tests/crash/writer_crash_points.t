#!/bin/sh
# Kill the writer at each step of a batch (SHMQ_TEST_CRASH_DIR, see
# daemons/writer.c) while producers send: records appended but wrote not
# published; wrote published but next_offsets not stored; offsets stored but
# nothing answered; answers given but ring heads not advanced.  Each time
# the master restarts it and its restart repair takes over: afterwards no
# acknowledged message is lost, none is stored twice, every ConsumeQueue is
# contiguous (verify), and no producer saw a failed send.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init writer-crash-points

TOPIC=TopicCrash
CRASH="$T/crash"
mkdir -p "$CRASH"
SHMQ_TEST_CRASH_DIR="$CRASH"
export SHMQ_TEST_CRASH_DIR

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

# Timeouts longer than the master's restart backoff: no send may fail.
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 2000 \
    --size 100 --size-max 2000 --timeout 20000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 1000000 --rate 2000 \
    --size 100 --size-max 2000 --async 32 --timeout 20000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$P1 $P2"
sleep 0.5

for step in appended published offsets answered appended answered; do
    old=$(worker_pid writer)
    touch "$CRASH/writer-$step"
    i=0
    while [ -e "$CRASH/writer-$step" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ ! -e "$CRASH/writer-$step" ]
    ok $? "the writer died at step $step"
    wait_restarted writer "$old" 300
    ok $? "the master restarted it" || diag "$T/shmqd.log"
    sleep 0.5
done
rm -f "$CRASH"/writer-*
grep -E "crash test|journal|answered|zeroed" "$T/shmqd.log" | sed "s/^/# /"

before=$(count_lines '^ACK' "$T/p1")
sleep 1
[ "$(count_lines '^ACK' "$T/p1")" -gt "$before" ]
ok $? "the producers go on after the last restart"
kill -TERM $P1 $P2
wait_pid $P1 300
ok $? "the synchronous producer had no failed send" || { grep ERR "$T/p1" | head -n 5 >"$T/bad"; diag "$T/bad"; }
wait_pid $P2 300
ok $? "the asynchronous producer had no failed send" || { grep ERR "$T/p2" | head -n 5 >"$T/bad"; diag "$T/bad"; }
[ "$(grep -c 'journal \[' "$T/shmqd.log")" -ge 1 ]
ok $? "restarted writers scanned the interrupted batch" || diag "$T/shmqd.log"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes: every ConsumeQueue contiguous, matching its records" || diag "$T/verify"

stored_load_records $TOPIC >"$T/stored"
is "$(awk '$4 != 1' "$T/stored" | wc -l | tr -d ' ')" "0" "every stored message is whole"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
is "$(uniq -d "$T/stored_keys" | wc -l | tr -d ' ')" "0" "no message is stored twice"
acked_keys "$T/p1" "$T/p2" >"$T/acked"
is "$(comm -23 "$T/acked" "$T/stored_keys" | wc -l | tr -d ' ')" "0" \
    "every acknowledged message is stored"

done_testing
