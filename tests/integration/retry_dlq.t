#!/bin/sh
# Consumer retries and dead letters with a short level table (1s 1s 1s 2s
# 3s): a consumer that fails a message sends it back; it comes again in
# %RETRY%<group> after the level of its retry count (3 + reconsume times,
# clamped), with reconsume times + 1, RETRY_TOPIC and ORIGIN_MESSAGE_ID;
# after the group's maximum (retryMaxTimes 4 in subscriptionGroup.json for
# one group, the store's maxReconsumeTimes 2 for another) it goes to
# %DLQ%<group>, which `shmqctl dlq` lists.  Both through shmqctl (consume
# --fail) and through the consumer API (shmq_consumer_poll, which reads the
# retry topic with the subscription, and shmq_consumer_send_back).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init retry-dlq

mkdir -p "$STORE/config"
cat >"$STORE/config/subscriptionGroup.json" <<'JSON'
{"subscriptionGroupTable":{"GR":{"groupName":"GR","retryMaxTimes":4,"retryQueueNums":1}}}
JSON
start_broker --set "messageDelayLevel=1s 1s 1s 2s 3s" --set maxReconsumeTimes=2
ok $? "shmqd starts with levels 1s 1s 1s 2s 3s, maxReconsumeTimes 2" || diag "$T/shmqd.log"
WORKER_PIDS="$WORKER_PIDS $(worker_field scheduler pid)"

# ---- shmqctl consume --fail through every retry of group GR ---------------------------------
"$CTL" send --store "$STORE" $SMALL TopicR "fail me" --tags TagR >"$T/send.out" 2>&1
ok $? "a message sent to TopicR" || diag "$T/send.out"
: >"$T/rounds"
for round in 0 1 2 3 4; do
    "$CTL" consume --store "$STORE" $SMALL TopicR --group GR --count 1 --timeout 6000 --fail \
        --json >>"$T/rounds" 2>"$T/round.err" || diag "$T/round.err"
done
is "$(jfield reconsume_times <"$T/rounds" | tr '\n' ' ')" "0 1 2 3 4 " \
    "five deliveries with reconsume times 0..4"
is "$(jfield topic <"$T/rounds" | tr '\n' ' ')" "TopicR %RETRY%GR %RETRY%GR %RETRY%GR %RETRY%GR " \
    "the first from TopicR, the retries from %RETRY%GR (read by the same consume)"
perl -MJSON::PP -e 'my @t = map { JSON::PP->new->decode($_)->{store_ts} } <STDIN>;
    my @want = (0, 1000, 2000, 3000, 3000); my $bad = 0;
    for my $i (1 .. $#t) { my $d = $t[$i] - $t[$i - 1];
        if ($d < $want[$i] || $d > $want[$i] + 2500) { print "# retry $i after $d ms\n"; $bad++ } }
    exit $bad' <"$T/rounds"
ok $? "retry k comes after level 3 + k - 1 (1 s, 2 s, 3 s, then 3 s: clamped to the last level)"
first_id=$(head -n 1 "$T/rounds" | jfield msg_id)
uniq=$(head -n 1 "$T/rounds" | jfield uniq_key)
is "$(jfield uniq_key <"$T/rounds" | sort -u)" "$uniq" "every retry keeps the message's UNIQ_KEY"

"$CTL" consume --store "$STORE" $SMALL TopicR --group GR --count 1 --timeout 2500 >"$T/none" 2>&1
is "$?" "1" "after the fifth failure (retryMaxTimes 4) nothing comes again"
"$CTL" dlq --store "$STORE" $SMALL --group GR --json >"$T/dlq.out" 2>"$T/dlq.err"
ok $? "shmqctl dlq lists group GR's dead letters" || diag "$T/dlq.err"
is "$(wc -l <"$T/dlq.out" | tr -d ' ')" "1" "one message in %DLQ%GR"
is "$(jfield reconsume_times <"$T/dlq.out")" "5" "with reconsume times 5"
is "$(jfield retry_topic <"$T/dlq.out")" "TopicR" "RETRY_TOPIC is the first topic"
is "$(jfield origin_msg_id <"$T/dlq.out")" "$first_id" "ORIGIN_MESSAGE_ID is the first message id"
is "$(jfield body <"$T/dlq.out")" "fail me" "the body is the message's"
"$CTL" dlq --store "$STORE" $SMALL --group GR >"$T/dlq.txt" 2>&1
grep -q "retryTopic=TopicR .*reconsumeTimes=5 .*body=fail me" "$T/dlq.txt"
ok $? "dlq text output" || diag "$T/dlq.txt"

# ---- the consumer API: a group without settings uses maxReconsumeTimes 2 ---------------------
"$HELPERS/sched_load" send "$STORE" TopicX --count 20 --after 0 >"$T/x.send" 2>&1
ok $? "20 messages to TopicX" || diag "$T/x.send"
"$HELPERS/sched_load" recv "$STORE" TopicX GX --count 20 --fail-until 100 --timeout 3000 --lines \
    >"$T/x.recv" 2>"$T/x.err"
is "$(grep -c '^msg ' "$T/x.recv")" "60" "each of 20 failed messages comes 3 times (2 retries)"
is "$(awk '$1 == "msg" { print $5 }' "$T/x.recv" | sort | uniq -c | awk '{ print $1 }' | tr '\n' ' ')" \
    "20 20 20 " "reconsume times 0, 1 and 2, twenty each"
# Never early: a retry's store time is never before its send-back (the writer reads the
# time after the entry was published), and the scheduler delivers at store time + delay.
awk '$1 == "msg" { if ($2 in last && $4 - last[$2] < 1000 * $5) bad++; last[$2] = $4 }
    END { exit bad > 0 }' "$T/x.recv"
ok $? "retry 1 arrives at least 1 s, retry 2 at least 2 s after the failed delivery"
"$CTL" dlq --store "$STORE" $SMALL --group GX --json >"$T/dlqx.out" 2>"$T/dlqx.err"
is "$(wc -l <"$T/dlqx.out" | tr -d ' ')" "20" "all 20 in %DLQ%GX"
is "$(jfield reconsume_times <"$T/dlqx.out" | sort -u)" "3" "each with reconsume times 3"

# ---- the consumer API: fail twice, then succeed ---------------------------------------------
"$HELPERS/sched_load" send "$STORE" TopicY --count 20 --after 0 >"$T/y.send" 2>&1
"$HELPERS/sched_load" recv "$STORE" TopicY GY --count 20 --fail-until 2 --timeout 5000 --lines \
    >"$T/y.recv" 2>"$T/y.err"
ok $? "20 messages failed twice each, then consumed" || diag "$T/y.err"
grep '^summary' "$T/y.recv" | grep -q 'distinct=20 total=60 dups=0'
ok $? "each delivered three times: twice failed, once consumed" || diag "$T/y.recv"
"$CTL" dlq --store "$STORE" $SMALL --group GY >"$T/dlqy.out" 2>"$T/dlqy.err"
is "$(wc -l <"$T/dlqy.out" | tr -d ' ')" "0" "nothing in %DLQ%GY"

"$CTL" consume --store "$STORE" $SMALL TopicR --group G0 --count 1 --timeout 3000 --json \
    >"$T/g0.out" 2>&1
is "$(jfield topic <"$T/g0.out")" "TopicR" "another group still reads the original message"

stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
done_testing
