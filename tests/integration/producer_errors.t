#!/bin/sh
# Each error a producer gets describes that send's own error, and status
# counts the refusals by cause.  One producer (tests/helpers/send_errors.c)
# sends, in a row, to a topic that does not exist (autoCreateTopicEnable
# false), a message whose TIMER_DELIVER_MS is not a number, a good one, one
# with queue id -2, one asking for delivery beyond timerMaxDelaySec, an
# asynchronous one whose TIMER_DELAY_SEC is not a number, a batch to a
# read-only topic, and good ones (queue chosen by the producer, and
# asynchronous).  Proves: each refusal's text names its own cause (the
# topic, the property and its value, the queue id, timerMaxDelaySec, the
# read-only topic) and none carries the text of an earlier one; queue id
# -2 is refused by the producer and only -1 (SHMQ_QUEUE_ANY) means "choose";
# the good sends are stored and nothing else; `shmqctl status` counts the
# store's refusals as bad input (rejects) and none as disk full, fenced or
# append errors, in --json and in its text; a send to a fenced store gets a
# text saying so and counts as fenced (refused_fenced), not as bad input.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init producer-errors

# case_rc NAME / case_text NAME: the return code / error text send_errors printed for a case.
case_rc() {
    awk -v c="$1" '$1 == c { print $2 }' "$T/out"
}
case_text() {
    awk -v c="$1" '$1 == c { $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$T/out"
}
# has NAME REGEX DESCRIPTION: the text of case NAME matches REGEX.
has() {
    case_text "$1" | grep -q -e "$2"
    ok $? "$3" || echo "#   text: '$(case_text "$1")'"
}
# lacks NAME REGEX DESCRIPTION: the text of case NAME does not match REGEX.
lacks() {
    case_text "$1" | grep -q -e "$2"
    ok $((!$?)) "$3" || echo "#   text: '$(case_text "$1")'"
}
counter() {
    status_json | jfield "$1"
}

start_broker --set autoCreateTopicEnable=false
ok $? "shmqd starts with autoCreateTopicEnable=false" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicE --queues 4 >"$T/topic.out" 2>&1 &&
    "$CTL" topic --store "$STORE" $SMALL create TopicRO --queues 1 --perm 4 >>"$T/topic.out" 2>&1
ok $? "topics TopicE (4 queues) and TopicRO (read-only) created" || diag "$T/topic.out"

"$HELPERS/send_errors" "$STORE" >"$T/out" 2>"$T/err"
ok $? "the producer ran every case" || diag "$T/err"
diag "$T/out"

[ "$(case_rc nosuch)" -lt 0 ]
ok $? "a topic that does not exist is refused"
has nosuch "NoSuchTopic.*autoCreateTopicEnable" "and the error names the topic and autoCreateTopicEnable"

[ "$(case_rc timer)" -lt 0 ]
ok $? "TIMER_DELIVER_MS=abc is refused"
has timer "TIMER_DELIVER_MS 'abc'" "and the error names the property and its value"
lacks timer "NoSuchTopic" "and says nothing of the send before it"

is "$(case_rc good)" "0" "a good send after two refusals is stored"

[ "$(case_rc queue-2)" -lt 0 ]
ok $? "queue id -2 is refused (only -1 means: the producer chooses)"
has queue-2 "queue id -2" "and the error names the queue id"
lacks queue-2 "TIMER_DELIVER_MS" "and says nothing of an earlier refusal"

[ "$(case_rc timer-far)" -lt 0 ]
ok $? "TIMER_DELAY_MS beyond timerMaxDelaySec is refused"
has timer-far "TIMER_DELAY_MS.*timerMaxDelaySec" "and the error says why"
lacks timer-far "queue id" "and says nothing of the send before it"

[ "$(case_rc async-timer)" -lt 0 ]
ok $? "an asynchronous send with TIMER_DELAY_SEC=zz gets an error in its callback"
has async-timer "TIMER_DELAY_SEC 'zz'" "and its callback's error text names the property and value"
lacks async-timer "TIMER_DELAY_MS" "and says nothing of the send before it"

[ "$(case_rc batch-readonly)" -lt 0 ]
ok $? "a batch to a read-only topic is refused"
has batch-readonly "TopicRO.*not writable" "and the error names the topic and says it is not writable"
lacks batch-readonly "TIMER_DELAY_SEC" "and says nothing of the send before it"

is "$(case_rc queue-any)" "0" "SHMQ_QUEUE_ANY: the producer chooses the queue"
is "$(case_rc good-async)" "0" "a good asynchronous send is stored"

# ---- what was stored, and what status counts -------------------------------------------------
is "$(counter messages_in)" "3" "the store holds the three good messages and nothing else"
# Refused by the writer: nosuch, timer, timer-far, async-timer, the batch (queue -2: by the producer).
is "$(counter rejects)" "5" "status counts the writer's five refusals as bad input (rejects)"
is "$(counter refused_disk_full)" "0" "and none as disk full (refused_disk_full)"
is "$(counter refused_fenced)" "0" "and none as fenced (refused_fenced)"
is "$(counter append_errors)" "0" "and none as an append error (append_errors)"
"$CTL" status --store "$STORE" $SMALL >"$T/status.txt" 2>&1
grep -q '^refused: *5 bad input, 0 disk full, 0 fenced, 0 not master, 0 append errors$' "$T/status.txt"
ok $? "the text status shows the refusals by cause" || diag "$T/status.txt"

# ---- a fenced store: its refusals are counted as such, and say so ----------------------------
# The producer registers first (registration needs a live master); then the master is held
# (SIGSTOP) so that it does not stop the fenced store yet.
"$HELPERS/send_wait" --store "$STORE" --topic TopicE --go-file "$T/go" >"$T/fsend.out" \
    2>"$T/fsend.err" &
FSEND=$!
i=0
while ! grep -q '^attached' "$T/fsend.out" 2>/dev/null && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -STOP "$SHMQD_PID"
"$HELPERS/fence_store" --store "$STORE" >"$T/fence.out" 2>&1
ok $? "the store is fenced (as after a failed CommitLog flush)" || diag "$T/fence.out"
: >"$T/go"
wait $FSEND
is "$?" "1" "a send to the fenced store fails"
grep -q "^err .*fenced: a commitlog flush failed" "$T/fsend.out"
ok $? "and its error says the store is fenced after a failed commitlog flush" || diag "$T/fsend.out"
is "$(counter refused_fenced)" "1" "status counts it as fenced (refused_fenced)"
is "$(counter rejects)" "5" "not as bad input"
is "$(counter messages_in)" "3" "and nothing was stored"
kill -CONT "$SHMQD_PID"
wait_pid "$SHMQD_PID" 600
SHMQD_PID=""
grep -q "store failed: a commitlog flush failed" "$T/shmqd.log"
ok $? "the master stops the fenced store" || diag "$T/shmqd.log"
done_testing
