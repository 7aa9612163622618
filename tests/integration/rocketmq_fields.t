#!/bin/sh
# Records the store writes again carry RocketMQ's fields, on a broker whose
# brokerIP1 is an IPv6 address, with a short level table (1s 1s 1s) and
# maxReconsumeTimes 1:
#   - every record has RocketMQ's IPv6 store host (sysflag 0x20, 20 bytes:
#     12 more than with IPv4), the message ids have 56 digits, and the ids a
#     producer is given name the records; consumers, query by id and verify
#     read them;
#   - a message failed by its consumer is sent back (SCHEDULE_TOPIC_XXXX),
#     delivered to %RETRY%<group>, failed again and dead-lettered
#     (%DLQ%<group>): every copy keeps the original's born host (RocketMQ
#     keeps it; not 0.0.0.0:0);
#   - a message delivered by a delay level and one delivered by the timer
#     carry WAIT=false (as RocketMQ's ScheduleMessageService and
#     TimerMessageStore write them).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init rocketmq-fields

# dump: every record of the CommitLog as JSON lines, in $T/dump.json.
dump() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump.json" 2>"$T/dump.err"
}
# field TOPIC FIELD: FIELD of each record of TOPIC in the dump (one line each).
field() {
    perl -MJSON::PP -e 'my ($t, $f) = @ARGV; while (my $l = <STDIN>) {
        my $j = JSON::PP->new->decode($l); next if $j->{topic} ne $t;
        my $v = $f =~ /^prop:(.*)/ ? $j->{properties}{$1} : $j->{$f};
        print defined $v ? $v : "null", "\n" }' "$1" "$2" <"$T/dump.json"
}
# wait_topic TOPIC [TENTHS]: a record of TOPIC is in the log (bounded, 30 s).
wait_topic() {
    local lim=${2:-300} i=0
    while [ $i -lt "$lim" ]; do
        dump && [ -n "$(field "$1" topic)" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

LEVELS="messageDelayLevel=1s 1s 1s"
start_broker --set brokerIP1=2001:db8::7 --set listenPort=10911 --set "$LEVELS" \
    --set maxReconsumeTimes=1
ok $? "shmqd starts with brokerIP1 2001:db8::7" || diag "$T/shmqd.log"

# ---- the IPv6 store host ----------------------------------------------------------------
"$CTL" send --store "$STORE" $SMALL TopicR "fail me" >"$T/send.out" 2>&1
ok $? "a message sent" || diag "$T/send.out"
sent_id=$(sed -n 's/.*msgId=\([0-9A-F]*\) .*/\1/p' "$T/send.out")
dump
ok $? "the log dumps" || diag "$T/dump.err"
is "$(field TopicR store_host)" "[2001:db8::7]:10911" "the record's store host is the IPv6 brokerIP1"
sf=$(field TopicR sysflag)
[ -n "$sf" ] && [ $((sf & 32)) -eq 32 ]
ok $? "its sysflag has STOREHOSTADDRESS_V6_FLAG (0x20): $sf"
is "$(field TopicR msg_id)" "$sent_id" "the producer's message id names the record"
is "${#sent_id}" "56" "a message id of an IPv6 store host has 56 digits"
is "$(printf '%s' "$sent_id" | cut -c1-8)" "20010DB8" "and starts with the store's address"
size=$(field TopicR size)
# 91 + body 7 + topic 6 + properties + 12 for the IPv6 store host (born host IPv4).
props_len=$((size - 91 - 7 - 6 - 12))
[ "$props_len" -gt 0 ] && [ "$props_len" -lt 200 ]
ok $? "the record is 12 bytes longer than with an IPv4 store host (size $size)"
"$CTL" query --store "$STORE" $SMALL --msg-id "$sent_id" >"$T/query.out" 2>&1
grep -q "fail me" "$T/query.out"
ok $? "a query by the IPv6 message id finds the message" || diag "$T/query.out"
born=$(field TopicR born_host)
[ -n "$born" ] && [ "$born" != "0.0.0.0:0" ]
ok $? "the original's born host is the producer's ($born)"

# ---- retry and dead letter keep the born host ----------------------------------------------
"$CTL" consume --store "$STORE" $SMALL TopicR --group GX --count 1 --timeout 10000 --fail \
    --json >"$T/round0" 2>"$T/round0.err"
ok $? "the consumer fails the message (sent back)" || diag "$T/round0.err"
wait_topic "%RETRY%GX"
ok $? "the retry is delivered to %RETRY%GX" || diag "$T/dump.err"
"$CTL" consume --store "$STORE" $SMALL TopicR --group GX --count 1 --timeout 10000 --fail \
    --json >"$T/round1" 2>"$T/round1.err"
ok $? "the consumer fails the retry (reconsume times 1: dead-lettered)" || diag "$T/round1.err"
is "$(jfield topic <"$T/round1")" "%RETRY%GX" "the second delivery came from %RETRY%GX"
wait_topic "%DLQ%GX"
ok $? "the message is in %DLQ%GX" || diag "$T/dump.err"
is "$(field SCHEDULE_TOPIC_XXXX born_host | sort -u)" "$born" \
    "the send-back record keeps the original's born host"
is "$(field '%RETRY%GX' born_host)" "$born" "the retry keeps it"
is "$(field '%DLQ%GX' born_host)" "$born" "the dead letter keeps it"
is "$(field '%DLQ%GX' store_host)" "[2001:db8::7]:10911" "and has the IPv6 store host too"
is "$(field '%RETRY%GX' prop:WAIT)" "false" "the retry delivered by its delay level has WAIT=false"

# ---- a timed message ---------------------------------------------------------------------------
"$CTL" send --store "$STORE" $SMALL TopicT "timed" --deliver-after 1000 >"$T/tsend.out" 2>&1
ok $? "a message sent for delivery after 1 s" || diag "$T/tsend.out"
"$CTL" consume --store "$STORE" $SMALL TopicT --group GT --count 1 --timeout 15000 \
    --json >"$T/timed" 2>"$T/timed.err"
ok $? "the timer delivers it" || diag "$T/timed.err"
dump
is "$(field TopicT prop:WAIT)" "false" "the message the timer delivered has WAIT=false"
[ -n "$(field TopicT prop:TIMER_ENQUEUE_MS)" ] && [ "$(field TopicT prop:TIMER_ENQUEUE_MS)" != null ]
ok $? "and TIMER_ENQUEUE_MS"
is "$(field TopicT born_host)" "$(field rmq_sys_wheel_timer born_host)" \
    "and the born host of the message the producer sent"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL --set "$LEVELS" >"$T/verify.out" 2>&1
ok $? "verify reads every record with its IPv6 store host: no problem" || diag "$T/verify.out"
done_testing
