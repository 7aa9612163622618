#!/bin/sh
# The indexer flushes an index file once, when it has filled (and at the
# stop), as RocketMQ does, not every second.  What it has flushed shows in
# the time it publishes for the checkpoint (status: index_flushed_ts, set
# after each flush): while the first file fills it stays 0, also over three
# of the indexer's once-a-second looks; once the file has filled it moves
# to cover it, and the file's messages are still found by key after a
# clean stop.  (Flushing every second, it moves within a second.)
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init index-flush

# 3,000 entries a file: one per message (its UNIQ_KEY).
INDEX="--set maxHashSlotNum=1000 --set maxIndexNum=3000"
start_broker $INDEX
ok $? "shmqd starts" || diag "$T/shmqd.log"

send() {
    "$CTL" send --store "$STORE" $SMALL "$@" >>"$T/send.out" 2>&1
}
send TopicF --count 1000 --size 16
ok $? "1,000 messages sent: the first index file is a third full" || diag "$T/send.out"
wait_pos indexed
ok $? "all indexed"
sleep 3.5
is "$(status_json | jfield index_flushed_ts)" "0" \
    "no index flush in 3.5 s (three looks) while no file has filled: index_flushed_ts stays 0"

send TopicF "in the first file" --keys "flush-first"
send TopicF --count 2500 --size 16
ok $? "2,501 more: the first file fills, a second one starts" || diag "$T/send.out"
wait_pos indexed
i=0
while [ "$(status_json | jfield index_flushed_ts)" = "0" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(status_json | jfield index_flushed_ts)" -gt 0 ]
ok $? "the full file is flushed: index_flushed_ts moves ($(status_json | jfield index_flushed_ts))"
[ "$(ls "$STORE/index" | wc -l)" -ge 2 ]
ok $? "two index files"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" query --store "$STORE" $SMALL $INDEX --topic TopicF --key flush-first --json \
    >"$T/q.out" 2>&1
is "$(jfield body <"$T/q.out")" "in the first file" "a message of the full file is found by key"
"$CTL" verify --store "$STORE" $SMALL $INDEX >"$T/verify.out" 2>&1
ok $? "shmqctl verify passes" || diag "$T/verify.out"
done_testing
