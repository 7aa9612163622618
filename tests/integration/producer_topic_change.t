#!/bin/sh
# A producer sees a topic's new write queues without re-opening: the
# producer keeps a copy of the last topic's table entry and uses it only
# while the entry is unchanged.  One producer handle
# (tests/helpers/topic_change_send.c) sends to queue 0 of a topic of 4
# write queues, then to queue 6, which is refused (SHMQ_E_RANGE); the
# topic is then updated to 8 write queues, and the same handle's next send
# to queue 6 is stored there.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init producer-topic-change

field() {
    awk -v c="$1" -v n="$2" '$1 == c { print $n }' "$T/out"
}

start_broker --set autoCreateTopicEnable=false
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicQ --queues 4 >"$T/topic.out" 2>&1
ok $? "topic TopicQ created with 4 queues" || diag "$T/topic.out"

mkfifo "$T/go"
"$HELPERS/topic_change_send" "$STORE" TopicQ 6 <"$T/go" >"$T/out" 2>"$T/err" &
HPID=$!
exec 7>"$T/go"
i=0
while ! grep -q '^ready' "$T/out" 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q '^ready' "$T/out"
ok $? "the producer sent before the change" || diag "$T/err"
is "$(field first 2)" "0" "a send to queue 0 of 4 is stored"
is "$(field before 2)" "-10016" "a send to queue 6 of 4 is refused (SHMQ_E_RANGE)"

"$CTL" topic --store "$STORE" $SMALL update TopicQ --queues 8 >"$T/update.out" 2>&1
ok $? "topic TopicQ updated to 8 queues" || diag "$T/update.out"
echo go >&7
exec 7>&-
wait "$HPID"
ok $? "the producer ran both sends" || diag "$T/err"
is "$(field after 2)" "0" "the same handle's send to queue 6 is stored after the change"
is "$(field after 3)" "6" "in queue 6"
done_testing
