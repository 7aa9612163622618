#!/bin/sh
# The authenticated replication link (haSecretFile: TLS 1.3 with a
# pre-shared key).  A slave with another secret, a slave on the plain
# protocol, and garbage on the master's port are refused at the handshake:
# a log line on the master naming the peer, counted in status, and not a
# byte of the log goes to them; a "master" that answers a TLS slave in the
# plain protocol gets nothing written; the slave with the right secret then
# follows, byte for byte.  Secret files readable by others, missing, or set
# together with haPlainLink keep shmqd from starting (exit 2, naming the
# key).  TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-auth
. "$SRC/tests/helpers/replication.sh"

start_broker $MCONF
ok $? "the master starts with an authenticated link" || diag "$T/shmqd.log"
grep -q "listening for slaves on 0.0.0.0:$HA_PORT (TLS 1.3, pre-shared key of $HA_SECRET)" \
    "$T/shmqd.log"
ok $? "the ha-sender says which link it serves" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{replication}{link}')" tls-psk "status: link tls-psk"
"$CTL" send --store "$MASTER" $SMALL TopicA --count 3000 --size 300 --async 32 >"$T/a.out" 2>&1
sent_ok a 3000
ok $? "3000 messages on the master" || diag "$T/a.out"

# ---- a slave with another secret -----------------------------------------------------------
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$T/other.secret")
from=$(wc -l <"$T/shmqd.log")
"$SHMQD" --store "$SLAVE" $SMALL $(sconf "$HA_PORT") --set haSecretFile="$T/other.secret" \
    >>"$T/slave.log" 2>&1 &
SLAVE_PID=$!
bg_add $SLAVE_PID
wait_jpath "$SLAVE" '$j->{state}' running
ok $? "a slave with another secret starts" || diag "$T/slave.log"
log_has "$T/shmqd.log" "$from" "connection from 127.0.0.1:[0-9]* refused: TLS handshake: "
ok $? "the master refuses it at the handshake, with a log line naming the peer" || diag "$T/shmqd.log"
log_has "$T/slave.log" 1 "not following master 127.0.0.1:$HA_PORT before .*: TLS handshake: "
ok $? "the slave logs the failed handshake (its epoch request) and does not follow" ||
    diag "$T/slave.log"
[ "$(jpath "$MASTER" '$j->{replication}{refused}')" -ge 1 ] &&
    [ "$(jpath "$SLAVE" '$j->{replication}{master}{refused}')" -ge 1 ]
ok $? "both count the refusal in status"
sleep 1
is "$(jpath "$SLAVE" '$j->{positions}{wrote}')" 0 "not a byte of the master's log reached it"
is "$(jpath "$SLAVE" '$j->{replication}{master}{connected}')" 0 "the slave is not connected"
is "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{address}')" "" "the master lists no slave"
stop_pid "$SLAVE_PID" 100
SLAVE_PID=""

# ---- a slave on the plain protocol, garbage -------------------------------------------------
from=$(wc -l <"$T/shmqd.log")
"$SHMQD" --store "$T/plain" $SMALL --set brokerRole=SLAVE --set brokerId=1 --set haPlainLink=true \
    --set haMasterAddress=127.0.0.1:$HA_PORT --set haListenPort=1 --set listenPort=2 \
    >>"$T/plain.log" 2>&1 &
PLAIN_PID=$!
bg_add $PLAIN_PID
log_has "$T/shmqd.log" "$from" "refused: TLS handshake: "
ok $? "a slave on the plain protocol is refused at the handshake" || diag "$T/shmqd.log"
wait_jpath "$T/plain" '$j->{state}' running
sleep 1
is "$(jpath "$T/plain" '$j->{positions}{wrote}')" 0 "and gets nothing"
stop_pid "$PLAIN_PID" 100
name=$(STORE=$T/plain; ctl_shm_name)
[ -n "$name" ] && rm -f "/dev/shm/$name" "/dev/shm/$name.cons" "/dev/shm/$name.wake"

from=$(wc -l <"$T/shmqd.log")
perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]")
    or die "connect: $!"; print $s "GET / HTTP/1.1\r\nHost: x\r\n\r\n" x 20; sleep 1' "$HA_PORT"
log_has "$T/shmqd.log" "$from" "refused: TLS handshake: "
ok $? "garbage on the port: refused at the handshake, with a log line" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{state}')" running "the master runs on"

# ---- a "master" that answers in the plain protocol --------------------------------------------
perl -MIO::Socket::INET -e '
    my $l = IO::Socket::INET->new(Listen => 2, LocalAddr => "127.0.0.1", LocalPort => $ARGV[0],
        ReuseAddr => 1) or die "listen: $!";
    my $c = $l->accept or die; print $c pack("q>N", 0, 64) . ("\x01" x 64); sleep 3;
' "$FAKE_PORT" >"$T/fake.out" 2>&1 &
FAKE=$!
bg_add $FAKE
sleep 0.3
start_slave "$SLAVE2" "$FAKE_PORT" slave2
SLAVE2_PID=$LAST_PID
log_has "$T/slave2.log" 1 "master 127.0.0.1:$FAKE_PORT.*TLS handshake: "
ok $? "a TLS slave refuses a master that answers in plain, with a log line" || diag "$T/slave2.log"
is "$(jpath "$SLAVE2" '$j->{positions}{wrote}')" 0 "and writes nothing"
stop_pid "$SLAVE2_PID" 100
SLAVE2_PID=""

# ---- the right secret ----------------------------------------------------------------------------
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "the slave restarts with the master's secret" || diag "$T/slave.log"
"$CTL" send --store "$MASTER" $SMALL TopicA --count 2000 --size 300 --async 32 >"$T/b.out" 2>&1
caught_up && same_log
ok $? "it follows the master, byte for byte" || diag "$T/slave.log"
grep -q "connected to master 127.0.0.1:$HA_PORT (TLSv1.3 TLS_" "$T/slave.log"
ok $? "over TLS 1.3" || diag "$T/slave.log"
is "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}')" 1 "the master lists it in sync"

# ---- secret files refused at start ---------------------------------------------------------------
bad_start() { # bad_start NAME EXPECT... : shmqd with the remaining options exits 2, log has EXPECT
    local name=$1 expect=$2 rc
    shift 2
    "$SHMQD" --store "$T/$name" $SMALL --set haListenPort=1 --set listenPort=2 "$@" \
        >"$T/$name.log" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -q "haSecretFile" "$T/$name.log" && grep -q "$expect" "$T/$name.log"
}
cp "$HA_SECRET" "$T/open.secret"
chmod 644 "$T/open.secret"
bad_start bad1 "mode 0644: readable or writable by group or others; chmod 600 it" \
    --set haSecretFile="$T/open.secret"
ok $? "a secret file readable by others: shmqd does not start, saying why" || diag "$T/bad1.log"
bad_start bad2 "No such file" --set haSecretFile="$T/missing.secret"
ok $? "a missing secret file: shmqd does not start" || diag "$T/bad2.log"
printf 'short\n' >"$T/short.secret"
chmod 600 "$T/short.secret"
bad_start bad3 "5 bytes of secret, expected 16..4096" --set haSecretFile="$T/short.secret"
ok $? "a secret too short: shmqd does not start" || diag "$T/bad3.log"
bad_start bad4 "not both" --set haSecretFile="$HA_SECRET" --set haPlainLink=true
ok $? "haSecretFile with haPlainLink: shmqd does not start" || diag "$T/bad4.log"
bad_start bad5 "an absolute path" --set haSecretFile=ha.secret
ok $? "a relative path: shmqd does not start" || diag "$T/bad5.log"

stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
