#!/bin/sh
# A hostile producer can hurt nobody but itself.  On a SYNC_FLUSH store,
# while an honest producer sends and an honest consumer reads, the hostile
# producer (tests/helpers/hostile_producer.c) first tries to write every
# page of the control block and the consumer area (each store faults,
# mprotect and /proc/self/mem writes are refused), then scribbles its own
# ring: garbage entries, a tail more than the ring ahead and one behind the
# writer's head, every completion slot and the head copy.  Each case ends as
# expected, the writer never restarts, and every SYNC_FLUSH message the
# honest producer had acknowledged is read by the consumer exactly once and
# stored exactly once.  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
broker_init sec-producer

start_broker --set flushDiskType=SYNC_FLUSH
ok $? "shmqd starts (SYNC_FLUSH)" || diag "$T/shmqd.log"
for t in TopicGood HostileOk; do
    "$CTL" topic --store "$STORE" $SMALL create $t --queues 4 >"$T/topic.out" 2>&1
    ok $? "topic $t created" || diag "$T/topic.out"
done
writer0=$(worker_pid writer)

"$HELPERS/load_consumer" --store "$STORE" --topic TopicGood --group GroupGood \
    --stop-file "$T/producers.done" --idle-ms 3000 --max-ms 240000 >"$T/c" 2>"$T/c.err" &
C=$!
"$HELPERS/load_producer" --store "$STORE" --topic TopicGood --id 1 --count 1000000 --rate 200 \
    --size 100 --size-max 2000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
bg_add "$C $P1"
sleep 0.5

"$HELPERS/hostile_producer" --store "$STORE" --ok-topic HostileOk --bad-topic HostileBad \
    >"$T/h" 2>"$T/h.err"
ok $? "every hostile case ended as expected" || { grep '^CASE.*FAIL\|^#' "$T/h" >"$T/h.bad"; diag "$T/h.bad"; diag "$T/h.err"; }
grep -q '^CASE shared-memory-writes refused .* pass$' "$T/h"
ok $? "no write to the control block or the consumer area went through" || diag "$T/h"
grep -q '^# control block: 0 of [0-9]* page stores went through' "$T/h" &&
    grep -q '^# consumer area: 0 of [0-9]* page stores went through' "$T/h"
ok $? "every page store faulted" || diag "$T/h"
for c in tail-beyond-ring tail-backwards slots-and-head-scribbled bad-magic length-past-tail; do
    grep -q "^CASE $c .* pass$" "$T/h"
    ok $? "its own ring scribbled ($c): only it is affected" || diag "$T/h"
done
is "$(worker_field writer pid)" "$writer0" "the writer never restarted"

kill -TERM $P1
wait_pid $P1 300
ok $? "the honest producer had every SYNC_FLUSH send acknowledged" ||
    { grep ERR "$T/p1" | head -n 5 >"$T/bad"; diag "$T/bad"; }
: >"$T/producers.done"
wait_pid $C 2400
ok $? "the honest consumer found every message whole, in order" ||
    { grep '^BAD' "$T/c" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/c.err"; }
acked_keys "$T/p1" >"$T/acked"
[ "$(wc -l <"$T/acked")" -gt 50 ]
ok $? "the honest producer was served meanwhile ($(wc -l <"$T/acked" | tr -d ' ') messages)"
awk '$1 == "MSG" { print $4 }' "$T/c" | sort >"$T/read"
[ -z "$(uniq -d "$T/read")" ]
ok $? "the consumer read no message twice"
comm -23 "$T/acked" "$T/read" >"$T/missing"
is "$(wc -l <"$T/missing" | tr -d ' ')" "0" "the consumer read every acknowledged message"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
stored_load_records TopicGood >"$T/stored"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
[ -z "$(uniq -d "$T/stored_keys")" ] && [ -z "$(comm -23 "$T/acked" "$T/stored_keys")" ]
ok $? "each acknowledged message is stored exactly once"

done_testing
