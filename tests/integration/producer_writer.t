#!/bin/sh
# The producer path on a real broker: batches, synchronous and asynchronous
# (shmq_send_batch_async; every message's answer names
# the record the store holds: UNIQ_KEY, commit log offset, queue, queue
# offset, message id), one-way sends, and a producer that outlives a master
# restart: its sends fail with -ESHUTDOWN or SHMQ_E_NOT_FOUND while the store
# is down, then it attaches to the new master by itself.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init producer-writer

TOPIC=TopicPW
for h in produce load_producer; do
    if [ ! -x "$HELPERS/$h" ]; then
        echo "Bail out! $HELPERS/$h not built"
        exit 1
    fi
done

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic $TOPIC created with 4 queues" || diag "$T/topic.out"

# ---- batches: the answers name the stored records ----------------------------------
"$HELPERS/produce" "$STORE" $TOPIC 500 300 --batch 50 --tags bt >"$T/batch" 2>"$T/batch.err"
ok $? "500 messages sent in batches of 50" || diag "$T/batch.err"
is "$(tail -n 1 "$T/batch")" "done 500 0" "every batch message answered OK"
awk '$1 == "ok" { print $2, $5, $3, $4, $6 }' "$T/batch" | sort >"$T/batch.answers"
"$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
    perl -MJSON::PP -e 'while (my $l = <STDIN>) { my $j = JSON::PP->new->decode($l);
        next unless $j->{topic} eq $ARGV[0];
        print join(" ", $j->{uniq_key}, $j->{phys_offset}, $j->{queue_id}, $j->{queue_offset},
                   $j->{msg_id}), "\n" }' $TOPIC | sort >"$T/batch.stored"
is "$(comm -3 "$T/batch.answers" "$T/batch.stored" | wc -l | tr -d ' ')" "0" \
    "each answer matches its record (uniq key, offset, queue, queue offset, msg id)"
is "$(awk '$1 == "ok" { print $3 }' "$T/batch" | uniq | wc -l | tr -d ' ')" "10" \
    "a batch lands in one queue (10 batches, 10 runs of one queue id)"

# ---- asynchronous batches: the answers name the stored records too --------------------
"$HELPERS/produce" "$STORE" TopicPWA 400 200 --batch 40 --async 4 >"$T/abatch" \
    2>"$T/abatch.err"
ok $? "400 messages sent in asynchronous batches of 40, 4 in flight" || diag "$T/abatch.err"
is "$(tail -n 1 "$T/abatch")" "done 400 0" "every message of the asynchronous batches answered OK"
awk '$1 == "ok" { print $2, $5, $3, $4, $6 }' "$T/abatch" | sort >"$T/abatch.answers"
"$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
    perl -MJSON::PP -e 'while (my $l = <STDIN>) { my $j = JSON::PP->new->decode($l);
        next unless $j->{topic} eq $ARGV[0];
        print join(" ", $j->{uniq_key}, $j->{phys_offset}, $j->{queue_id}, $j->{queue_offset},
                   $j->{msg_id}), "\n" }' TopicPWA | sort >"$T/abatch.stored"
is "$(wc -l <"$T/abatch.stored" | tr -d ' ')" "400" "the store holds the 400 messages"
is "$(comm -3 "$T/abatch.answers" "$T/abatch.stored" | wc -l | tr -d ' ')" "0" \
    "each asynchronous answer matches its record (uniq key, offset, queue, queue offset, msg id)"
is "$(awk '$1 == "ok" { print $3 }' "$T/abatch" | uniq | wc -l | tr -d ' ')" "10" \
    "an asynchronous batch lands in one queue (10 batches, 10 runs of one queue id)"

# ---- one-way --------------------------------------------------------------------------
"$HELPERS/produce" "$STORE" TopicOneway 300 100 --oneway >"$T/oneway" 2>"$T/oneway.err"
ok $? "300 one-way sends returned 0" || diag "$T/oneway.err"
i=0
while [ "$(status_json | jfield messages_in)" -lt 1200 ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
is "$(status_json | jfield messages_in)" "1200" "the writer stored the one-way messages too"

# ---- a producer across a master restart --------------------------------------------------
# A send in flight when the stop begins is answered by the draining writer; on a loaded
# machine that can take more than a second, so the producer waits up to 10 s for an answer.
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 7 --count 1000000 --rate 200 \
    --size 100 --timeout 10000 >"$T/lp" 2>"$T/lp.err" &
LP=$!
bg_add $LP
sleep 1
stop_broker
ok $? "shmqd stops cleanly while the producer sends" || diag "$T/shmqd.log"
sleep 1
start_broker
ok $? "shmqd starts again" || diag "$T/shmqd.log"
before=$(count_lines '^ACK' "$T/lp")
i=0
while [ "$(count_lines '^ACK' "$T/lp")" -le "$before" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(count_lines '^ACK' "$T/lp")" -gt "$before" ]
ok $? "the producer attached to the new master by itself"
kill -TERM $LP
wait_pid $LP 300
awk '$1 == "ERR" { print $4 }' "$T/lp" | sort -u >"$T/lp.errs"
bad=$(grep -v -x -e '-108' -e '-10015' "$T/lp.errs" | wc -l | tr -d ' ')
is "$bad" "0" "while the store was down, sends failed only with -ESHUTDOWN or SHMQ_E_NOT_FOUND" ||
    { awk '$1 == "ERR" && $4 != -108 && $4 != -10015' "$T/lp" >"$T/lp.bad"; diag "$T/lp.bad"; }

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/verify"
acked_keys "$T/lp" >"$T/acked"
stored_load_records $TOPIC | awk '{ print $1 }' | sort >"$T/stored"
is "$(comm -23 "$T/acked" "$T/stored" | wc -l | tr -d ' ')" "0" \
    "every message acknowledged across the restart is stored"

done_testing
