#!/bin/sh
# Consumer permissions as RocketMQ's pull enforces them: a topic whose perm
# lacks PERM_READ (4) is not consumed, nor is any topic by a group whose
# consumeEnable is false in config/subscriptionGroup.json; each refusal names
# its rule, nothing is delivered and no offset moves; a group that may
# consume reads every message; a change to the file is seen without a
# restart of the consumer's store.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init consume-perm

groups_file() { # groups_file CONSUME_ENABLE_OF_GOFF
    cat >"$STORE/config/subscriptionGroup.json.new" <<JSON
{"subscriptionGroupTable":{
 "GOFF":{"groupName":"GOFF","consumeEnable":$1,"retryMaxTimes":16,"retryQueueNums":1},
 "GON":{"groupName":"GON","consumeEnable":true,"retryMaxTimes":16,"retryQueueNums":1}},
 "dataVersion":{"counter":1,"timestamp":1700000000000}}
JSON
    mv "$STORE/config/subscriptionGroup.json.new" "$STORE/config/subscriptionGroup.json"
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" create TopicR --queues 2 >"$T/t.out" 2>&1 &&
    "$CTL" topic --store "$STORE" create TopicW --queues 2 >>"$T/t.out" 2>&1
ok $? "two topics created" || diag "$T/t.out"
"$CTL" send --store "$STORE" $SMALL TopicR --count 10 >"$T/s.out" 2>&1 &&
    "$CTL" send --store "$STORE" $SMALL TopicW --count 10 >>"$T/s.out" 2>&1
ok $? "10 messages to each" || diag "$T/s.out"
"$CTL" topic --store "$STORE" update TopicW --perm 2 >"$T/t2.out" 2>&1
ok $? "TopicW made write-only (perm 2)" || diag "$T/t2.out"
groups_file false

consume() { # consume TOPIC GROUP NAME
    "$CTL" consume --store "$STORE" $SMALL "$1" --group "$2" --count 10 --json --timeout 1500 \
        >"$T/$3.out" 2>"$T/$3.err"
}

# refused TOPIC GROUP NAME WHAT RULE: the pull fails, nothing is printed, the error names RULE.
refused() {
    consume "$1" "$2" "$3"
    local rc=$?
    [ $rc -ne 0 ] && [ "$(grep -c '^{' "$T/$3.out")" = 0 ]
    ok $? "$4 (exit $rc, nothing printed)" || diag "$T/$3.err"
    grep -q "$5" "$T/$3.err"
    ok $? "the refusal names its rule: $5" || diag "$T/$3.err"
}
refused TopicW GON w "a write-only topic is not consumed" \
    "TopicW is not readable (perm 2, PERM_READ 4 not set)"
refused TopicR GOFF off "a group with consumeEnable false consumes nothing" "consumeEnable"

consume TopicR GON on
ok $? "a group that may consume reads TopicR" || diag "$T/on.err"
is "$(grep -c '^{' "$T/on.out")" 10 "all 10 messages"

groups_file true
consume TopicR GOFF off2
ok $? "with consumeEnable true again, GOFF reads TopicR from the start" || diag "$T/off2.err"
is "$(grep -c '^{' "$T/off2.out")" 10 "all 10 messages (the refused reads committed nothing)"

"$CTL" topic --store "$STORE" update TopicW --perm 6 >"$T/t3.out" 2>&1
consume TopicW GON w2
ok $? "TopicW readable again (perm 6)" || diag "$T/w2.err"
is "$(grep -c '^{' "$T/w2.out")" 10 "all 10 messages"

stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
done_testing
