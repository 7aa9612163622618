#!/bin/sh
# SYNC_MASTER (RocketMQ's statuses): with no slave a send is stored and
# answered SLAVE_NOT_AVAILABLE at once; with a slave in sync, synchronous,
# asynchronous and batch sends of several producers are answered SEND_OK
# only once the slave holds them (when the last answer came, the slave's log
# ends where the master's does, and consumers on the slave read every
# message), also under 4 producers x 64 in flight; with the slave's
# receiver stopped a send is answered FLUSH_SLAVE_TIMEOUT, not before slaveTimeout; with the slave gone,
# SLAVE_NOT_AVAILABLE again, and nothing hangs.  TAP output; every wait is
# bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-sync
. "$SRC/tests/helpers/replication.sh"

TIMEOUT_MS=1500
start_broker $MCONF --set brokerRole=SYNC_MASTER --set slaveTimeout=$TIMEOUT_MS
ok $? "a SYNC_MASTER starts" || diag "$T/shmqd.log"

# send_status TOPIC: one synchronous send; its status word ("SEND_OK", ...) in ST.
send_status() {
    timeout 30 "$CTL" send --store "$MASTER" $SMALL "$1" hello >"$T/one.out" 2>"$T/one.err"
    ST=$(awk '{print $1; exit}' "$T/one.out")
}

send_status TopicS
is "$ST" SLAVE_NOT_AVAILABLE "no slave: SLAVE_NOT_AVAILABLE" || diag "$T/one.err"
"$CTL" consume --store "$MASTER" $SMALL TopicS --group G0 --count 1 --timeout 5000 \
    >"$T/c0.out" 2>&1
ok $? "the message is stored all the same (RocketMQ's meaning)" || diag "$T/c0.out"

start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "a slave starts" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "the master sees it in sync"

# Several producers: synchronous, asynchronous and batch sends.
"$CTL" send --store "$MASTER" $SMALL TopicS --count 400 --size 300 >"$T/s1.out" 2>&1 &
P1=$!
"$CTL" send --store "$MASTER" $SMALL TopicS --count 400 --size 900 >"$T/s2.out" 2>&1 &
P2=$!
"$CTL" send --store "$MASTER" $SMALL TopicS --count 6000 --size 300 --async 64 >"$T/s3.out" 2>&1 &
P3=$!
"$HELPERS/produce" "$MASTER" TopicS 1000 200 --batch 20 >"$T/s4.out" 2>"$T/s4.err" &
P4=$!
bg_add "$P1 $P2 $P3 $P4"
rc=0
for p in $P1 $P2 $P3; do
    wait $p || rc=1
done
wait $P4 || rc=1
WM=$(jpath "$MASTER" '$j->{positions}{wrote}')
WS=$(jpath "$SLAVE" '$j->{positions}{wrote}')
grep -q "messages=400 errors=0" "$T/s1.out" && grep -q "messages=400 errors=0" "$T/s2.out" &&
    grep -q "messages=6000 errors=0" "$T/s3.out" && [ $rc -eq 0 ]
ok $? "every synchronous and asynchronous send is answered SEND_OK" ||
    { diag "$T/s3.out"; diag "$T/s4.err"; }
is "$WS" "$WM" "once the answers came the slave held everything the master stored"
grep -q '^done 1000 0' "$T/s4.out" && [ "$(grep -c '^ok .* 0$' "$T/s4.out")" -eq 1000 ]
ok $? "and batch sends (1000 messages in batches of 20)" || diag "$T/s4.out"
expected=$((1 + 400 + 400 + 6000 + 1000))
"$CTL" consume --store "$SLAVE" $SMALL TopicS --group GS --json --count "$((expected - 1))" \
    --timeout 20000 >"$T/cs.json" 2>"$T/cs.err"
got=$(wc -l <"$T/cs.json")
[ "$got" -ge $((expected - 1)) ]
ok $? "consumers on the slave read them ($got)" || diag "$T/cs.err"

# A load as fast as the writer: the ha-sender still reads the slave's reports between its
# frames, so the slave stays in sync and every send is answered SEND_OK.
"$BUILD/shmq-bench" produce --store "$MASTER" --producers 4 --inflight 64 --size 1024 \
    --seconds 3 --topic TopicF --no-baseline >"$T/bench.out" 2>&1
grep -q 'messages .* 0 errors' "$T/bench.out" && ! grep -q 'messages   0 in' "$T/bench.out"
ok $? "4 producers x 64 in flight for 3 s: every send SEND_OK" || diag "$T/bench.out"

# The slave's receiver stopped: FLUSH_SLAVE_TIMEOUT after slaveTimeout.
RP=$(jpath "$SLAVE" '(grep { $_->{name} eq "ha-receiver" } @{$j->{workers}})[0]{pid}')
kill -STOP "$RP"
t0=$(date +%s%N)
send_status TopicS
t1=$(date +%s%N)
kill -CONT "$RP"
is "$ST" FLUSH_SLAVE_TIMEOUT "a slave that does not answer: FLUSH_SLAVE_TIMEOUT" || diag "$T/one.err"
[ $(((t1 - t0) / 1000000)) -ge $TIMEOUT_MS ]
ok $? "not before slaveTimeout ($(((t1 - t0) / 1000000)) ms)"
caught_up
ok $? "the slave catches up once it runs again" || diag "$T/slave.log"
send_status TopicS
is "$ST" SEND_OK "and sends are answered SEND_OK again" || diag "$T/one.err"

# The slave gone: SLAVE_NOT_AVAILABLE, at once.
stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{address}' ""
send_status TopicS
is "$ST" SLAVE_NOT_AVAILABLE "the slave stopped: SLAVE_NOT_AVAILABLE" || diag "$T/one.err"
"$CTL" send --store "$MASTER" $SMALL TopicS --count 200 --async 32 >"$T/s5.out" 2>&1
grep -q "messages=0 errors=200" "$T/s5.out"
ok $? "asynchronous sends too, and none hangs" || diag "$T/s5.out"

stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
