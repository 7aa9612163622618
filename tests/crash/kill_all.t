#!/bin/sh
# With flushDiskType=SYNC_FLUSH, kill -9 the master and every worker at once
# while producers send, then start the store again: the new master runs
# abnormal recovery and logs it, the producers re-attach and go on, and after
# a clean stop every acknowledged message is in the CommitLog exactly once,
# whole, and verify passes.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init kill-all

TOPIC=TopicAll
SYNC="--set flushDiskType=SYNC_FLUSH"

start_broker $SYNC
ok $? "shmqd (SYNC_FLUSH) starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

# Producers with a send timeout long enough to ride through the restart.
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 300 \
    --size 100 --size-max 3000 --timeout 8000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 1000000 --rate 300 \
    --size 100 --size-max 3000 --async 8 --timeout 8000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$P1 $P2"
sleep 2

wp=$(worker_pid writer)
fp=$(worker_pid flusher)
dp=$(worker_pid dispatcher)
[ -n "$wp" ] && [ -n "$fp" ] && [ -n "$dp" ]
ok $? "the three workers run (writer $wp, flusher $fp, dispatcher $dp)"
before=$(cat "$T/p1" "$T/p2" | grep -c '^ACK')
# Every worker the store runs (the optional ones too), not only the three above.
kill_store_all
ok $? "master and workers are dead ($before messages acknowledged before)"
[ -e "$STORE/abort" ]
ok $? "the abort file stayed behind"
"$CTL" status --store "$STORE" $SMALL >"$T/st.out" 2>&1
is "$?" "1" "status says the store is not running"

echo "---- restart ----" >>"$T/shmqd.log"
start_broker $SYNC
ok $? "shmqd starts again over the killed store" || diag "$T/shmqd.log"
sed -n '/---- restart ----/,$p' "$T/shmqd.log" | grep -q "recovery (abnormal"
ok $? "the new master logged an abnormal recovery" || diag "$T/shmqd.log"

# The producers re-attach to the new master and keep being acknowledged.
mid=$(cat "$T/p1" "$T/p2" | grep -c '^ACK')
i=0
while [ "$(cat "$T/p1" "$T/p2" | grep -c '^ACK')" -le $((mid + 100)) ] && [ $i -lt 150 ]; do
    sleep 0.1
    i=$((i + 1))
done
now=$(cat "$T/p1" "$T/p2" | grep -c '^ACK')
[ "$now" -gt $((mid + 100)) ]
ok $? "producers are acknowledged again after the restart ($mid -> $now)"

kill -TERM $P1 $P2
wait_pid $P1 300
wait_pid $P2 300
grep -q '^DONE' "$T/p1" && grep -q '^DONE' "$T/p2"
ok $? "both producers ended cleanly" || { diag "$T/p1.err"; diag "$T/p2.err"; }

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
[ ! -e "$STORE/abort" ]
ok $? "the clean stop removed abort"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes" || diag "$T/verify"

acked_keys "$T/p1" "$T/p2" >"$T/acked"
stored_load_records $TOPIC >"$T/stored"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
NACK=$(wc -l <"$T/acked" | tr -d ' ')
is "$(comm -23 "$T/acked" "$T/stored_keys" | wc -l | tr -d ' ')" "0" \
    "every acknowledged message ($NACK) is present"
is "$(uniq -d "$T/stored_keys" | wc -l | tr -d ' ')" "0" "no message is stored twice"
is "$(awk '$4 != 1' "$T/stored" | wc -l | tr -d ' ')" "0" "every stored body is intact"

done_testing
