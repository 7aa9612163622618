#!/bin/sh
# A slow replication link under SYNC_MASTER, through the test's proxy
# (tests/helpers/ha_proxy.pl, "delay MS"): with every byte held 400 ms each
# way a send is answered SEND_OK, and not before the round trip (800 ms);
# with the link slower than slaveTimeout the answer is
# FLUSH_SLAVE_TIMEOUT, not before the timeout, and nothing hangs; once the
# link is fast again sends are SEND_OK and the slave's log is the master's,
# byte for byte.  Times are asserted only as "not before".  TAP output;
# every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-delay
. "$SRC/tests/helpers/replication.sh"

PROXY_PORT=$FAKE_PORT
perl "$SRC/tests/helpers/ha_proxy.pl" "$PROXY_PORT" "$HA_PORT" "$T" >>"$T/proxy.out" 2>&1 &
PROXY=$!
bg_add $PROXY

TIMEOUT_MS=3000
start_broker $MCONF --set brokerRole=SYNC_MASTER --set slaveTimeout=$TIMEOUT_MS
ok $? "a SYNC_MASTER starts" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$PROXY_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "a slave starts, its link through the proxy" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "the master sees it in sync" || diag "$T/shmqd.log"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# timed_send: one synchronous send; its status in ST, its duration in MS.
timed_send() {
    local t0
    t0=$(now_ms)
    timeout 60 "$CTL" send --store "$MASTER" $SMALL TopicD hello >"$T/one.out" 2>"$T/one.err"
    MS=$(($(now_ms) - t0))
    ST=$(awk '{print $1; exit}' "$T/one.out")
}

timed_send
is "$ST" SEND_OK "a fast link: SEND_OK" || diag "$T/one.err"

echo 400 >"$T/delay"
timed_send
is "$ST" SEND_OK "a link 400 ms slow each way: SEND_OK" || diag "$T/one.err"
[ "$MS" -ge 800 ]
ok $? "and not before the round trip through the slow link ($MS ms >= 800)"

echo 5000 >"$T/delay"
timed_send
is "$ST" FLUSH_SLAVE_TIMEOUT "a link slower than slaveTimeout: FLUSH_SLAVE_TIMEOUT" ||
    diag "$T/one.err"
[ "$MS" -ge $TIMEOUT_MS ]
ok $? "not before slaveTimeout ($MS ms >= $TIMEOUT_MS)"
"$CTL" send --store "$MASTER" $SMALL TopicD --count 200 --size 100 --async 16 >"$T/many.out" 2>&1
is "$(grep -cE '^(SEND_OK|FLUSH_SLAVE_TIMEOUT) ' "$T/many.out")" 200 \
    "200 asynchronous sends on the slow link are each answered: nothing hangs" || diag "$T/many.out"

rm -f "$T/delay"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{lag_bytes}' 0 600
ok $? "the link fast again: the slave catches up" || diag "$T/slave.log"
timed_send
is "$ST" SEND_OK "and sends are SEND_OK again" || diag "$T/one.err"
caught_up && same_log
ok $? "the slave's log is the master's, byte for byte" || diag "$T/slave.log"

stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
