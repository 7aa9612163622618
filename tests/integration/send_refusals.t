#!/bin/sh
# Every kind of refused send is answered with the broker's reason, through
# shmqctl send (synchronous and --async), shmq-bench (shmq_send and
# in-flight sends) and so the C API's shmq_error_detail(): no topic
# (autoCreateTopicEnable false), a topic without write permission, a body
# over maxMessageSize, a send to one of the store's own system topics, and
# a delayed (DELAY level) or timed (TIMER_DELAY_MS) send to a missing or
# read-only topic -- refused at send time exactly like a plain send, with
# the same error, and never stored to be dropped when due.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init send-refusals

OPTS="--set autoCreateTopicEnable=false --set maxMessageSize=1024"
send() {
    "$CTL" send --store "$STORE" $SMALL $OPTS "$@"
}
"$CTL" topic --store "$STORE" $SMALL $OPTS create RO --perm 4 >"$T/out" 2>&1
"$CTL" topic --store "$STORE" $SMALL $OPTS create OK >>"$T/out" 2>&1
ok $? "topics RO (read-only) and OK created" || diag "$T/out"
start_broker $OPTS
ok $? "shmqd starts" || diag "$T/shmqd.log"
wrote0=$(position wrote)

# refused NAME REGEX ARGS...: shmqctl send ARGS fails (exit 1, no SEND_OK) with REGEX in its error.
refused() {
    local name=$1 re=$2
    shift 2
    send "$@" >"$T/r.out" 2>&1
    local rc=$?
    [ "$rc" -eq 1 ] && ! grep -q SEND_OK "$T/r.out" && grep -q -e "$re" "$T/r.out"
    ok $? "$name: refused with the reason ($re)" || diag "$T/r.out"
}
NOTOPIC='not found: topic Missing does not exist and autoCreateTopicEnable is false'
NOWRITE='Permission denied: topic RO is not writable (perm 4)'
refused "no topic" "$NOTOPIC" Missing x
refused "no topic, --async" "$NOTOPIC" Missing --count 2 --async 2
refused "delay level to a missing topic" "$NOTOPIC" Missing x --delay-level 2
refused "delay level to a missing topic, --async" "$NOTOPIC" Missing x --delay-level 2 --async 1
refused "timed to a missing topic" "$NOTOPIC" Missing x --deliver-after 5000
refused "no write permission" "$NOWRITE" RO x
refused "delay level to a read-only topic" "$NOWRITE" RO x --delay-level 1
refused "timed to a read-only topic" "$NOWRITE" RO x --deliver-after 5000
refused "body over maxMessageSize" 'body of 2000 bytes exceeds maxMessageSize 1024' OK "$(printf '%2000s' '' | tr ' ' a)"
for sys in SCHEDULE_TOPIC_XXXX rmq_sys_wheel_timer RMQ_SYS_TRANS_HALF_TOPIC; do
    refused "send to system topic $sys" "Permission denied: sending to topic $sys is forbidden" "$sys" x
    refused "delayed send to system topic $sys" "sending to topic $sys is forbidden" "$sys" x --delay-level 1
done
"$CTL" topic --store "$STORE" $SMALL list >"$T/topics" 2>&1
! grep -q '^Missing ' "$T/topics"
ok $? "no refused send created a topic" || diag "$T/topics"
is "$(position wrote)" "$wrote0" "nothing was stored"

# shmq-bench reports the broker's text as its first error (shmq_send and sends in flight).
bench_err() {
    "$BUILD/shmq-bench" produce --store "$STORE" --count 2 "$@" >"$T/b.out" 2>&1
    sed -n 's/.*first error (process 0): //p' "$T/b.out"
}
is "$(bench_err --topic Missing)" "topic Missing does not exist and autoCreateTopicEnable is false" \
    "shmq-bench: no topic"
is "$(bench_err --topic RO --inflight 4)" "topic RO is not writable (perm 4)" \
    "shmq-bench --inflight: no write permission"
is "$(bench_err --topic OK --size 2000)" "body of 2000 bytes exceeds maxMessageSize 1024" \
    "shmq-bench: body over maxMessageSize"
is "$(bench_err --topic rmq_sys_wheel_timer --inflight 2)" \
    "sending to topic rmq_sys_wheel_timer is forbidden: it is a system topic" \
    "shmq-bench --inflight: a system topic"

# The good ones still go through.
send OK x --delay-level 1 >"$T/out" 2>&1
ok $? "a delayed send to a writable topic is stored" || diag "$T/out"
send OK x --deliver-after 100 >"$T/out" 2>&1
ok $? "a timed send to a writable topic is stored" || diag "$T/out"
"$CTL" consume --store "$STORE" $SMALL OK --group G --count 2 --timeout 10000 >"$T/c" 2>&1
ok $? "and both are delivered when due" || diag "$T/c"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
