#!/bin/sh
# A new producer starts its round robin over a topic's queues at a random
# queue, as RocketMQ's client does, so that producers started together do
# not all send their first message to queue 0.  16 producers (shmqctl send)
# each send one message to a 4-queue topic: they all choose one same queue
# with probability 4 * 4^-16 < 1e-9.  One producer still spreads its
# messages evenly (round robin from wherever it started).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init producer-random-queue

"$CTL" topic --store "$STORE" $SMALL create Q4 --queues 4 >"$T/out" 2>&1
ok $? "a topic of 4 queues" || diag "$T/out"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"

: >"$T/sent"
k=0
while [ $k -lt 16 ]; do
    "$CTL" send --store "$STORE" $SMALL Q4 "m$k" >>"$T/sent" 2>&1
    k=$((k + 1))
done
is "$(grep -c '^SEND_OK' "$T/sent")" "16" "16 producers sent one message each"
queues=$(sed -n 's/^SEND_OK .* queue=\([0-9]*\) .*/\1/p' "$T/sent" | sort -u | wc -l | tr -d ' ')
[ "$queues" -gt 1 ]
ok $? "their first messages went to more than one queue ($queues)" || diag "$T/sent"

"$CTL" send --store "$STORE" $SMALL Q4 --count 40 >"$T/out" 2>&1
ok $? "one producer sends 40 messages" || diag "$T/out"
"$CTL" consume --store "$STORE" $SMALL Q4 --group G --json --timeout 1000 >"$T/c" 2>"$T/c.err"
is "$(jfield queue <"$T/c" | sort | uniq -c | awk '{ print $1 }' | sort -n | tr '\n' ' ')" \
    "$(for q in 0 1 2 3; do
        echo $(( $(sed -n 's/^SEND_OK .* queue=\([0-9]*\) .*/\1/p' "$T/sent" | grep -c "^$q$") + 10 ))
    done | sort -n | tr '\n' ' ')" \
    "and spreads them evenly: 10 more in every queue"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
