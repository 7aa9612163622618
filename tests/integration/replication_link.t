#!/bin/sh
# The replication link through a TCP proxy the test controls
# (tests/helpers/ha_proxy.pl), on the default link (TLS 1.3 with a
# pre-shared key): what crosses the link does not show the messages; a link
# cut under load comes back and the slave catches up; a bit flipped in the
# master's stream fails the record's authentication at the slave (counted,
# logged), which connects again and gets the right bytes.
# In the end the slave's log is the master's, byte for byte, and consumers
# on the slave read every message once.  TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-link
. "$SRC/tests/helpers/replication.sh"

PROXY_PORT=$FAKE_PORT
start_proxy() { # the proxy in the background; its pid in PROXY
    perl "$SRC/tests/helpers/ha_proxy.pl" "$PROXY_PORT" "$HA_PORT" "$T" >>"$T/proxy.out" 2>&1 &
    PROXY=$!
    bg_add $PROXY
}
start_proxy

start_broker $MCONF
ok $? "the master starts" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$PROXY_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "a slave starts, its link through the proxy" || diag "$T/slave.log"
is "$(jpath "$SLAVE" '$j->{replication}{link}')" tls-psk "the link is TLS with a pre-shared key"

touch "$T/tap"
"$CTL" send --store "$MASTER" $SMALL TopicL --count 4000 --size 300 --async 32 >"$T/l1.out" 2>&1
caught_up && same_log
ok $? "it follows the master" || diag "$T/slave.log"
rm -f "$T/tap"
[ "$(wc -c <"$T/tap.bin")" -gt 1200000 ] && ! grep -q TopicL "$T/tap.bin"
ok $? "the proxy saw the stream go by, and not one topic name in it (encrypted)" ||
    diag "$T/proxy.out"

# A cut under load.
"$CTL" send --store "$MASTER" $SMALL TopicL --count 20000 --size 300 --async 32 >"$T/l2.out" 2>&1 &
P=$!
bg_add $P
sleep 0.3
kill -9 "$PROXY" # every connection cut at once, mid-frame
wait "$PROXY" 2>/dev/null
start_proxy
wait $P
grep -q "messages=20000 errors=0" "$T/l2.out"
ok $? "the master answers every send while the link is cut" || diag "$T/l2.out"
wait_jpath "$SLAVE" '$j->{replication}{master}{connected}' 1
ok $? "the link comes back" || { diag "$T/proxy.out"; diag "$T/slave.log"; }
caught_up && same_log
ok $? "the slave catches up, byte for byte" || diag "$T/slave.log"

# A flipped bit in the master's stream.
refused0=$(jpath "$SLAVE" '$j->{replication}{master}{refused}')
echo 20000 >"$T/flip"
kill -9 "$PROXY"
wait "$PROXY" 2>/dev/null
start_proxy
"$CTL" send --store "$MASTER" $SMALL TopicL --count 6000 --size 300 --async 32 >"$T/l3.out" 2>&1
log_has "$T/proxy.out" 1 '^flipped byte 20000'
ok $? "the proxy flipped a bit of the stream" || diag "$T/proxy.out"
caught_up && same_log
ok $? "the slave refused the damaged bytes, connected again and caught up, byte for byte" ||
    diag "$T/slave.log"
[ "$(jpath "$SLAVE" '$j->{replication}{master}{refused}')" -gt "$refused0" ]
ok $? "the refusal is counted" || diag "$T/slave.log"
grep -q "master 127.0.0.1:$PROXY_PORT: closed: TLS: decryption failed or bad record mac" "$T/slave.log"
ok $? "and logged: the TLS record did not authenticate" || diag "$T/slave.log"

"$CTL" consume --store "$SLAVE" $SMALL TopicL --group GL --json --count 30000 --timeout 20000 \
    >"$T/c.json" 2>"$T/c.err"
is "$(jfield uniq_key <"$T/c.json" | sort -u | wc -l)" 30000 \
    "consumers on the slave read all 30000 messages once" || diag "$T/c.err"

stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
