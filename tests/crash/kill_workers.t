#!/bin/sh
# kill -9 the writer, the flusher and the dispatcher, three times each, while
# producers send and a consumer reads: the master restarts each one every
# time; afterwards no acknowledged message is lost, none is stored twice (each
# acknowledged UNIQ_KEY exactly once in the stopped store's CommitLog), the
# consumer never got a torn record, a gap or a duplicate, and verify passes.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init kill-workers

TOPIC=TopicKill
KILLS=3

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group GK --idle-ms 3000 \
    --stop-file "$T/producers.done" --max-ms 55000 >"$T/c" 2>"$T/c.err" &
CPID=$!
# Producers paced so that the machine keeps room for restarts; one asynchronous.
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 400 \
    --size 100 --size-max 4000 --timeout 5000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 1000000 --rate 400 \
    --size 100 --size-max 4000 --async 8 --timeout 5000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$CPID $P1 $P2"
sleep 1

for w in writer flusher dispatcher; do
    restarted=0
    for k in $(seq 1 $KILLS); do
        old=$(worker_field $w pid)
        if [ -z "$old" ] || [ "$old" -le 0 ]; then
            break
        fi
        kill -KILL "$old"
        if wait_restarted $w "$old" 200; then
            restarted=$((restarted + 1))
        fi
        sleep 0.7 # the load goes on between kills
    done
    is "$restarted" "$KILLS" "the $w came back after each of $KILLS kill -9"
    r=$(worker_field $w restarts)
    [ -n "$r" ] && [ "$r" -ge "$KILLS" ]
    ok $? "status counts the $w's restarts ($r)"
done
grep -q "killed by signal 9" "$T/shmqd.log"
ok $? "the master logged the kills" || diag "$T/shmqd.log"
is "$(store_state)" "running" "the store is still running"

# Stop the load; the consumer reads what is left, then idles out.
kill -TERM $P1 $P2
wait_pid $P1 300
wait_pid $P2 300
touch "$T/producers.done"
tail -n 1 "$T/p1" | grep -q '^DONE [1-9][0-9]* ' && tail -n 1 "$T/p2" | grep -q '^DONE [1-9][0-9]* '
ok $? "both producers had messages acknowledged and ended cleanly" || { diag "$T/p1.err"; diag "$T/p2.err"; }
acked_keys "$T/p1" "$T/p2" >"$T/acked"
NACK=$(wc -l <"$T/acked" | tr -d ' ')
[ "$NACK" -gt 1000 ]
ok $? "many messages were acknowledged under the kills ($NACK)"
errs=$(cat "$T/p1" "$T/p2" | grep -c '^ERR')
echo "# $errs sends failed or timed out during the kills (not acknowledged, outcome unknown)"

wait_pid $CPID 600
ok $? "the consumer found no gap, duplicate or torn record" ||
    { grep BAD "$T/c" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/c.err"; }
awk '$1 == "MSG" { print $4 }' "$T/c" | sort >"$T/consumed"
is "$(uniq -d "$T/consumed" | wc -l | tr -d ' ')" "0" "the consumer got no message twice"
is "$(comm -23 "$T/acked" "$T/consumed" | wc -l | tr -d ' ')" "0" \
    "the consumer got every acknowledged message"

stop_broker
ok $? "shmqd stops cleanly after the kills (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/verify"
stored_load_records $TOPIC >"$T/stored"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
is "$(uniq -d "$T/stored_keys" | wc -l | tr -d ' ')" "0" "no message is stored twice"
is "$(comm -23 "$T/acked" "$T/stored_keys" | wc -l | tr -d ' ')" "0" \
    "no acknowledged message is lost"
is "$(awk '$4 != 1' "$T/stored" | wc -l | tr -d ' ')" "0" "every stored body is intact"
cmp -s "$T/stored_keys" "$T/consumed"
ok $? "the consumer got exactly the stored messages"

done_testing
