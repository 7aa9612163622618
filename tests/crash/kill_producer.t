#!/bin/sh
# kill -9 producers in the middle of a stream of large messages, at random
# moments, three times: the other producers go on (every one of their sends
# is acknowledged), new producers get rings, the store stops cleanly and
# verify passes; every message of a killed producer that is in the store is
# whole (valid body CRC and length), none is stored twice, and every one it
# had acknowledged is there.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init kill-producer

TOPIC=TopicP
ROUNDS=3

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 2 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

# A steady, well-behaved producer running through every kill.
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 300 \
    --size 100 --size-max 2000 >"$T/p1" 2>"$T/p1.err" &
GOOD=$!
bg_add $GOOD

for r in $(seq 1 $ROUNDS); do
    id=$((10 + r))
    # Large messages (30..64 KiB), as fast as it can: most of the time it is
    # in the middle of copying an entry into its ring.
    "$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id $id --count 1000000 \
        --size 30000 --size-max 65000 --async 4 >"$T/p$id" 2>"$T/p$id.err" &
    BIG=$!
    bg_add $BIG
    i=0
    while [ "$(count_lines '^ACK' "$T/p$id")" -lt 3 ] && [ $i -lt 300 ] && alive $BIG; do
        sleep 0.02
        i=$((i + 1))
    done
    # A random moment within the next 150 ms.
    sleep "0.$(awk -v s="$$$r" 'BEGIN { srand(s); printf "%03d", int(rand() * 150) }')"
    before=$(count_lines '^ACK' "$T/p1")
    kill -KILL $BIG
    wait $BIG 2>/dev/null
    acks=$(count_lines '^ACK' "$T/p$id")
    [ "$acks" -ge 3 ]
    ok $? "round $r: the large-message producer was killed after $acks acknowledgements"
    sleep 1
    after=$(count_lines '^ACK' "$T/p1")
    [ "$after" -gt "$before" ]
    ok $? "round $r: the steady producer goes on ($before -> $after acknowledged)"
done

# A new producer is served after the kills (the orphaned rings are reclaimed or others are free).
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 99 --count 200 --size 1000 \
    >"$T/p99" 2>"$T/p99.err"
ok $? "a new producer gets a ring and all its messages acknowledged" || diag "$T/p99.err"

kill -TERM $GOOD
wait_pid $GOOD 300
ok $? "the steady producer had no failed send" || { grep ERR "$T/p1" | head -n 5 >"$T/bad"; diag "$T/bad"; }
grep -q '^DONE' "$T/p1"
ok $? "and ended cleanly"

# Every ring is free again (the writer drained and freed the orphans).
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/verify"

stored_load_records $TOPIC >"$T/stored"
is "$(awk '$4 != 1' "$T/stored" | wc -l | tr -d ' ')" "0" \
    "every stored message is whole, those of the killed producers included"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
is "$(uniq -d "$T/stored_keys" | wc -l | tr -d ' ')" "0" "no message is stored twice"
acked_keys "$T"/p[0-9]* >"$T/acked"
is "$(comm -23 "$T/acked" "$T/stored_keys" | wc -l | tr -d ' ')" "0" \
    "every acknowledged message is stored, the killed producers' included"
killed=$(awk '$2 >= 11 && $2 <= 13' "$T/stored" | wc -l | tr -d ' ')
[ "$killed" -gt 0 ]
ok $? "the killed producers' messages are in the store ($killed)"
# Per killed producer, the stored sequence numbers have no hole: a producer's
# ring is appended in order, so only a suffix can be missing.
awk '$2 >= 11 && $2 <= 13 { print $2, $3 }' "$T/stored" | sort -k1,1n -k2,2n |
    awk '{ if ($1 != id) { id = $1; want = 0 } if ($2 != want) bad++; want = $2 + 1 } END { exit bad > 0 }'
ok $? "each killed producer's stored messages are a prefix of what it sent"

done_testing
