#!/bin/sh
# Replication between two stores on 127.0.0.1 (ASYNC_MASTER, RocketMQ's
# plain HA protocol, haPlainLink=true): a slave that starts empty against a
# master of several segments gets the master's last segment first; under a
# load of several producers its CommitLog is byte for byte the master's,
# and consumers on the slave get every message once; producers on the slave
# are refused; kill -9 of the ha-receiver and of the ha-sender in a loop
# under load, and a master stopped and started again, lose and duplicate
# nothing; garbage on the master's HA port, a report beyond the master's
# end, and a "master" that sends a damaged record or a frame at the wrong
# offset close the connection with a log line and change nothing else;
# SLAVE or SYNC_MASTER without a link (haSecretFile or haPlainLink) are
# refused at start.
# TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication

. "$SRC/tests/helpers/replication.sh"
use_plain_link # this file tests RocketMQ's protocol, with fake peers speaking it

# ---- a master with several segments, then an empty slave -----------------------------
start_broker $MCONF
ok $? "the master starts with its HA link" || diag "$T/shmqd.log"
grep -q "listening for slaves on 0.0.0.0:$HA_PORT" "$T/shmqd.log"
ok $? "the ha-sender listens, saying the link is not authenticated" || diag "$T/shmqd.log"
"$CTL" send --store "$MASTER" $SMALL TopicOld --count 5000 --size 400 --async 32 >"$T/old.out" 2>&1
sent_ok old 5000
ok $? "5000 messages on the master before the slave exists" || diag "$T/old.out"
W0=$(position wrote)
LAST_SEG=$(printf '%020d' $((W0 - W0 % 1048576)))
[ "$LAST_SEG" != 00000000000000000000 ]
ok $? "the master's log has several segments"

# A delay-level progress file left from a time the store was a master (its log may be cut,
# another master delivers meanwhile): a store that starts as a slave removes it.
mkdir -p "$SLAVE/config" && head -c 8192 /dev/zero >"$SLAVE/config/delaycheck"
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "the slave starts" || diag "$T/slave.log"
[ ! -e "$SLAVE/config/delaycheck" ]
ok $? "a store starting as a slave removes config/delaycheck"
caught_up
ok $? "the slave catches up with the master ($WS of $WM)" || diag "$T/slave.log"
is "$(ls "$SLAVE/commitlog" | head -n 1)" "$LAST_SEG" \
    "an empty slave's log starts at the master's last segment"
same_log
ok $? "the slave's segments are the master's, byte for byte"

# ---- load from several producers ---------------------------------------------------------
send_bg TopicA 6000 300 pa
PA=$LAST_PID
send_bg TopicA 6000 700 pb
PB=$LAST_PID
send_bg TopicB 6000 200 pc
PC=$LAST_PID
wait $PA
wait $PB
wait $PC
sent_ok pa 6000 && sent_ok pb 6000 && sent_ok pc 6000
ok $? "three producers had 18000 messages acknowledged" || diag "$T/pa.err"
caught_up
ok $? "the slave catches up after the load" || diag "$T/slave.log"
same_log
ok $? "its CommitLog is byte for byte the master's"
consumed_ok TopicA 12000
ok $? "a consumer on the slave reads the 12000 messages of TopicA, each once" || diag "$T/c.err"
consumed_ok TopicB 6000
ok $? "and the 6000 of TopicB" || diag "$T/c.err"
is "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}')" 1 "the master's status: the slave is in sync"
is "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{acked}')" "$WM" "and has confirmed all it has"
is "$(jpath "$MASTER" '$j->{replication}{replicated}')" "$WM" "replicated is the master's end"
is "$(jpath "$SLAVE" '$j->{replication}{master}{connected}')" 1 "the slave's status: connected"
"$CTL" status --store "$MASTER" $SMALL >"$T/status.txt" 2>&1
grep -q "link plain (RocketMQ's protocol, no authentication)" "$T/status.txt"
ok $? "the text status says the link is not authenticated" || diag "$T/status.txt"

"$CTL" send --store "$SLAVE" $SMALL TopicA hello >"$T/sp.out" 2>"$T/sp.err"
[ $? -ne 0 ] && grep -q "is a slave (brokerRole=SLAVE)" "$T/sp.err"
ok $? "a producer on the slave is refused, saying why" || diag "$T/sp.err"

# ---- kill -9 of the receiver and the sender under load -----------------------------------
send_bg TopicK 20000 300 pk
PK=$LAST_PID
send_bg TopicK 20000 300 pl
PL=$LAST_PID
for round in 1 2 3; do
    sleep 0.3
    RP=$(jpath "$SLAVE" '(grep { $_->{name} eq "ha-receiver" } @{$j->{workers}})[0]{pid}')
    kill -9 "$RP" 2>/dev/null
    sleep 0.3
    SP=$(worker_pid ha-sender)
    kill -9 "$SP" 2>/dev/null
done
wait $PK
wait $PL
sent_ok pk 20000 && sent_ok pl 20000
ok $? "40000 messages acknowledged while the ha-receiver and ha-sender were killed" ||
    diag "$T/pk.err"
caught_up
ok $? "the slave catches up once both run again" || diag "$T/slave.log"
same_log
ok $? "its CommitLog is still the master's, byte for byte"
consumed_ok TopicK 40000
ok $? "a consumer on the slave reads the 40000, each once" || diag "$T/c.err"

# ---- the master stopped and started again --------------------------------------------------
stop_broker
ok $? "the master stops cleanly while a slave follows it" || diag "$T/shmqd.log"
wait_jpath "$SLAVE" '$j->{replication}{master}{connected}' 0
ok $? "the slave sees the link down"
start_broker $MCONF
ok $? "the master starts again" || diag "$T/shmqd.log"
"$CTL" send --store "$MASTER" $SMALL TopicR --count 3000 --size 300 --async 32 >"$T/r.out" 2>&1
sent_ok r 3000
ok $? "3000 more messages on the master" || diag "$T/r.out"
caught_up
ok $? "the slave reconnects and catches up" || diag "$T/slave.log"
same_log
ok $? "byte for byte the master's"

# ---- hostile peers on the master's HA port ----------------------------------------------------
before_lines=$(wc -l <"$T/shmqd.log")
perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]")
    or die "connect: $!"; print $s pack("q>", -5); sleep 1' "$HA_PORT"
perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]")
    or die "connect: $!"; print $s pack("q>", 1 << 50); sleep 1' "$HA_PORT"
i=0
while ! tail -n +"$before_lines" "$T/shmqd.log" | grep -q "never wrote" && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
tail -n +"$before_lines" "$T/shmqd.log" | grep -q "report -5: not an offset"
ok $? "a negative report: the connection is closed with a log line" || diag "$T/shmqd.log"
tail -n +"$before_lines" "$T/shmqd.log" | grep -q "beyond this master's end .* never wrote"
ok $? "a report beyond the master's end: closed, saying so" || diag "$T/shmqd.log"
"$CTL" send --store "$MASTER" $SMALL TopicR --count 100 --size 300 >"$T/r2.out" 2>&1
caught_up && same_log
ok $? "the master and its slave go on as before" || diag "$T/slave.log"
is "$(jpath "$MASTER" '$j->{state}')" running "the master is running"

# ---- a hostile master ------------------------------------------------------------------------
# It answers a slave that starts empty with the real master's first records, one
# body byte flipped in the third; on the next connection with a frame at the wrong
# offset.  The slave's metadata requests on the same port are closed unanswered.
SEG0="$MASTER/commitlog/$(ls "$MASTER/commitlog" | head -n 1)"
T=$T perl -MIO::Socket::INET -e '
    my ($port, $seg) = @ARGV;
    $SIG{PIPE} = "IGNORE"; # a slave that closes first costs the answer, not the server
    open(my $f, "<:raw", $seg) or die; read($f, my $log, 65536); close $f;
    my ($pos, @rec) = (0);
    while (@rec < 4) { my $len = unpack("N", substr($log, $pos, 4)); push @rec, $pos; $pos += $len }
    my $third = $rec[2];
    substr($log, $rec[3] - 10, 1) = chr(ord(substr($log, $rec[3] - 10, 1)) ^ 0x40);
    open(my $o, ">", "$ENV{T}/fake.third") or die; print $o "$third\n"; close $o;
    my $l = IO::Socket::INET->new(Listen => 8, LocalAddr => "127.0.0.1", LocalPort => $port,
        ReuseAddr => 1) or die "listen: $!";
    # Requests of the slave (0xFF "SHMQRQ1": its epoch table, its metadata) are answered
    # with a heartbeat frame, as a RocketMQ master would, which is not an answer (the slave
    # follows unchecked).
    sub slave { for (;;) { my $c = $l->accept or die; read($c, my $r, 8);
        return $c if substr($r, 0, 1) ne "\xff"; print $c pack("q>N", 0, 0); sleep 1; close $c } }
    my $c = slave();
    print $c pack("q>N", 0, $pos) . substr($log, 0, $pos); sleep 2; close $c;
    $c = slave();
    print $c pack("q>N", 4096, 16) . ("\0" x 16); sleep 2; close $c;
' "$FAKE_PORT" "$SEG0" >"$T/fake.out" 2>&1 &
FAKE=$!
bg_add $FAKE
sleep 0.3
start_slave "$SLAVE2" "$FAKE_PORT" slave2
SLAVE2_PID=$LAST_PID
ok $? "a second slave starts, following the hostile master" || diag "$T/slave2.log"
i=0
while ! grep -q "but this log ends at" "$T/slave2.log" && [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q "the record received at $(cat "$T/fake.third" 2>/dev/null)" "$T/slave2.log"
ok $? "a damaged record is refused, naming its offset" || diag "$T/slave2.log"
grep -q "a frame at 4096, but this log ends at $(cat "$T/fake.third" 2>/dev/null)" "$T/slave2.log"
ok $? "a frame at the wrong offset is refused" || diag "$T/slave2.log"
is "$(jpath "$SLAVE2" '$j->{positions}{wrote}')" "$(cat "$T/fake.third" 2>/dev/null)" \
    "the slave published the records before the damaged one, nothing more"
[ "$(jpath "$SLAVE2" '$j->{replication}{master}{refused}')" -ge 2 ]
ok $? "the refusals are counted"
is "$(jpath "$SLAVE2" '$j->{state}')" running "the slave runs on"
stop_pid "$SLAVE2_PID" 100
SLAVE2_PID=""

# ---- configurations refused at start ------------------------------------------------------------
"$SHMQD" --store "$T/bad1" $SMALL --set brokerRole=SLAVE --set brokerId=1 \
    --set haMasterAddress=127.0.0.1:1 >"$T/bad1.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "haSecretFile" "$T/bad1.log" && grep -q "haPlainLink=true" "$T/bad1.log"
ok $? "a SLAVE without a link does not start, naming both keys (exit $rc)" || diag "$T/bad1.log"
"$SHMQD" --store "$T/bad2" $SMALL --set brokerRole=SYNC_MASTER >"$T/bad2.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "haSecretFile" "$T/bad2.log"
ok $? "a SYNC_MASTER without a link to slaves does not start either (exit $rc)" ||
    diag "$T/bad2.log"

stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
