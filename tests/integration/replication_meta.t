#!/bin/sh
# A slave keeps its master's metadata (RocketMQ's SlaveSynchronize), fetched
# every 3 s and when the link connects through a request on the master's HA
# port: a topic created on the master with shmqctl (queue counts, perm)
# appears in the slave's topic table and topics.json (a topic only the slave
# has stays); a changed
# subscriptionGroup.json and the scheduler's delayOffset.json are copied;
# consumer offsets committed on the master reach the slave, so that a
# consumer there resumes where the master's stopped, while a group that
# consumes on the slave keeps its own progress (offsets only move forward).
# All of it over the default link (TLS with a pre-shared key); then on
# RocketMQ's plain link, which a perl client speaks: a request with an
# unknown code is answered with an error status and
# replication goes on; a fake master whose metadata answers are malformed
# (not JSON, a damaged entry, a length above 16 MiB, a file cut short) is
# refused with a log line (the same one in a row logged once) and nothing on
# the slave changes.
# TAP output; every wait is bounded and generous (the machine is shared).

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication_meta

. "$SRC/tests/helpers/replication.sh"

# jfile FILE PERL-EXPR: a value of a store's JSON file ($j; bare integer keys quoted first).
jfile() {
    perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1; my $t = <$f>;
        $t =~ s/([{,]\s*)(-?\d+)\s*:/$1"$2":/g; my $j = eval { JSON::PP->new->decode($t) }
        or exit 1; my $v = eval $ARGV[1]; print defined $v ? $v : "", "\n"' "$1" "$2"
}
# wait_jfile FILE PERL-EXPR VALUE [TENTHS]: until FILE shows VALUE there (default 60 s).
wait_jfile() {
    local lim=${4:-600} i=0
    while [ "$(jfile "$1" "$2")" != "$3" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(jfile "$1" "$2")" = "$3" ]
}
# The sum of the committed offsets of KEY ("topic@group") in a consumerOffset.json.
SUM='my $m = $j->{offsetTable}{$ENV{KEY}} or return ""; my $s = 0; $s += $_ for values %$m; $s'

LEVELS="messageDelayLevel=1s 2s 3s"
start_broker $MCONF --set "$LEVELS" --set flushDelayOffsetInterval=500
ok $? "the master starts with its HA link" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "the slave starts" || diag "$T/slave.log"

# ---- topics --------------------------------------------------------------------------------
t0=$(now_ms)
"$CTL" topic --store "$MASTER" create TopicM --read-queues 6 --write-queues 5 --perm 4 \
    >"$T/topic.out" 2>&1
ok $? "a topic created on the master: 6 read queues, 5 write queues, perm 4" || diag "$T/topic.out"
wait_jfile "$SLAVE/config/topics.json" \
    'my $t = $j->{topicConfigTable}{TopicM}; "$t->{readQueueNums}/$t->{writeQueueNums}/$t->{perm}"' \
    6/5/4
ok $? "it is in the slave's topics.json with its queue counts and perm" || diag "$T/slave.log"
echo "# the topic reached the slave's topics.json in $(($(now_ms) - t0)) ms"
"$CTL" topic --store "$SLAVE" list --json >"$T/slist.json" 2>&1
perl -MJSON::PP -e 'local $/; my $t = <STDIN>; my $ok = 0;
    for my $l (split /\n/, $t) { my $j = eval { JSON::PP->new->decode($l) } or next;
        for my $x (ref $j eq "ARRAY" ? @$j : ($j)) { $ok = 1 if $x->{topic} eq "TopicM" &&
            $x->{read_queue_nums} == 6 && $x->{write_queue_nums} == 5 && $x->{perm} == 4 } }
    exit !$ok' <"$T/slist.json"
ok $? "and in the slave's topic table (topic list)" || diag "$T/slist.json"
"$CTL" topic --store "$MASTER" update TopicM --read-queues 6 --write-queues 6 --perm 6 \
    >"$T/topic.out" 2>&1
wait_jfile "$SLAVE/config/topics.json" \
    'my $t = $j->{topicConfigTable}{TopicM}; "$t->{writeQueueNums}/$t->{perm}"' 6/6
ok $? "an update on the master (6 write queues, perm 6) follows" || diag "$T/slave.log"
"$CTL" topic --store "$SLAVE" create TopicS --queues 2 >"$T/topics.out" 2>&1
ok $? "a topic created on the slave alone" || diag "$T/topics.out"

# ---- subscription groups ---------------------------------------------------------------------
cat >"$T/groups.json" <<'JSON'
{
	"subscriptionGroupTable":{
		"GS":{
			"groupName":"GS",
			"consumeEnable":false,
			"consumeFromMinEnable":true,
			"consumeBroadcastEnable":true,
			"retryMaxTimes":3,
			"retryQueueNums":1,
			"brokerId":0,
			"whichBrokerWhenConsumeSlowly":1
		}
	}
}
JSON
cp "$T/groups.json" "$MASTER/config/subscriptionGroup.json.new" &&
    mv "$MASTER/config/subscriptionGroup.json.new" "$MASTER/config/subscriptionGroup.json"
t0=$(now_ms)
wait_jfile "$SLAVE/config/subscriptionGroup.json" \
    '$j->{subscriptionGroupTable}{GS}{retryMaxTimes}' 3
ok $? "a subscription group written on the master appears on the slave" || diag "$T/slave.log"
echo "# subscriptionGroup.json reached the slave in $(($(now_ms) - t0)) ms"
cmp -s "$MASTER/config/subscriptionGroup.json" "$SLAVE/config/subscriptionGroup.json"
ok $? "the slave's file is the master's, byte for byte"

# ---- consumer offsets -----------------------------------------------------------------------
"$CTL" send --store "$MASTER" $SMALL TopicM --count 30 --size 100 >"$T/s.out" 2>&1
ok $? "30 messages sent to TopicM on the master" || diag "$T/s.out"
caught_up
ok $? "the slave has them" || diag "$T/slave.log"
"$CTL" consume --store "$MASTER" $SMALL TopicM --group GM --count 12 --timeout 20000 \
    >"$T/c.out" 2>&1
ok $? "group GM consumes 12 of them on the master and commits" || diag "$T/c.out"
t0=$(now_ms)
KEY=TopicM@GM wait_jfile "$SLAVE/config/consumerOffset.json" "$SUM" 12
ok $? "GM's offsets (12 messages) are in the slave's consumerOffset.json" || diag "$T/slave.log"
echo "# GM's offsets reached the slave's file in $(($(now_ms) - t0)) ms (fetch every 3 s, the flusher saves every 5 s)"

# A group served on both sides in turn: GL reads 5 on the master, then the rest on the slave.
"$CTL" consume --store "$MASTER" $SMALL TopicM --group GL --count 5 --timeout 20000 \
    >"$T/c.out" 2>&1
KEY=TopicM@GL wait_jfile "$SLAVE/config/consumerOffset.json" "$SUM" 5
ok $? "group GL's 5 on the master reach the slave" || diag "$T/slave.log"
"$CTL" consume --store "$SLAVE" $SMALL TopicM --group GL --count 25 --json --timeout 20000 \
    >"$T/gl.json" 2>"$T/gl.err"
ok $? "a consumer of GL on the slave reads the other 25, from where the master's stopped" ||
    diag "$T/gl.err"
is "$(wc -l <"$T/gl.json" | tr -d ' ')" 25 "exactly 25"
KEY=TopicM@GL wait_jfile "$SLAVE/config/consumerOffset.json" "$SUM" 30
ok $? "the slave's own commits of GL are saved (30)" || diag "$T/slave.log"
# Not before: at least three fetches of the master's table (GL at 5 there) go by.
sleep 10
is "$(KEY=TopicM@GL jfile "$SLAVE/config/consumerOffset.json" "$SUM")" 30 \
    "the master's older offsets of GL do not move the slave's back"
is "$(jfile "$SLAVE/config/topics.json" '$j->{topicConfigTable}{TopicS}{readQueueNums}')" 2 \
    "the topic only the slave has stays"
"$CTL" consume --store "$SLAVE" $SMALL TopicM --group GM --count 18 --json --timeout 20000 \
    >"$T/gm.json" 2>"$T/gm.err"
ok $? "a consumer of GM on the slave (as after a failover) reads the 18 the master's left" ||
    diag "$T/gm.err"
is "$(wc -l <"$T/gm.json" | tr -d ' ')" 18 "exactly 18"

# ---- delay offsets --------------------------------------------------------------------------
"$CTL" send --store "$MASTER" $SMALL TopicD late --delay-level 1 >"$T/d.out" 2>&1
ok $? "a message with delay level 1 on the master" || diag "$T/d.out"
wait_jfile "$MASTER/config/delayOffset.json" '$j->{offsetTable}{1}' 1
ok $? "the master's scheduler delivered it and saved delayOffset.json" || diag "$T/shmqd.log"
t0=$(now_ms)
wait_jfile "$SLAVE/config/delayOffset.json" '$j->{offsetTable}{1}' 1
ok $? "the slave's delayOffset.json has the master's level 1 offset" || diag "$T/slave.log"
echo "# delayOffset.json reached the slave in $(($(now_ms) - t0)) ms"

# ---- the request protocol on the master's HA port (RocketMQ's plain link from here on) --------
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
use_plain_link
start_broker $MCONF --set "$LEVELS" --set flushDelayOffsetInterval=500
ok $? "the master starts again, on the plain link" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
caught_up
ok $? "the slave follows it again" || diag "$T/slave.log"
REQ='use IO::Socket::INET; my ($port, $code) = @ARGV;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
    print $s "\xffSHMQRQ1" . pack("N", $code);
    my $h = ""; while (length($h) < 8) { my $r = sysread($s, $h, 8 - length($h), length($h));
        die "closed\n" unless $r }
    my ($st, $len) = unpack("l>N", $h); my $b = "";
    while (length($b) < $len) { my $r = sysread($s, $b, $len - length($b), length($b));
        die "cut\n" unless $r }
    print "$st $len\n";
    if ($code == 1) { my $p = 0; while ($p < $len) { my $n = unpack("n", substr($b, $p, 2));
        my $name = substr($b, $p + 2, $n); my $l = unpack("N", substr($b, $p + 2 + $n, 4));
        print "$name $l\n"; $p += 6 + $n + $l } } else { print "$b\n" }'
perl -e "$REQ" "$HA_PORT" 99 >"$T/req99.out" 2>&1
is "$(head -n 1 "$T/req99.out" | cut -d' ' -f1)" -10019 \
    "an unknown request code is answered with SHMQ_E_ARG" || diag "$T/req99.out"
grep -q "unknown request code 99" "$T/req99.out"
ok $? "and a text saying why" || diag "$T/req99.out"
perl -e "$REQ" "$HA_PORT" 1 >"$T/req1.out" 2>&1
is "$(head -n 1 "$T/req1.out" | cut -d' ' -f1)" 0 "a metadata request is answered with status 0" ||
    diag "$T/req1.out"
for f in topics.json subscriptionGroup.json delayOffset.json consumerOffset.json; do
    grep -q "^$f [1-9]" "$T/req1.out"
    ok $? "the answer holds $f" || diag "$T/req1.out"
done
"$CTL" send --store "$MASTER" $SMALL TopicM --count 200 --size 300 >"$T/s2.out" 2>&1
caught_up && same_log
ok $? "replication goes on as before, byte for byte" || diag "$T/slave.log"
[ "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}')" = 1 ] &&
    [ -n "$(jpath "$MASTER" '$j->{replication}{slaves}[0]{address}')" ] &&
    [ "$(jpath "$MASTER" '$j->{replication}{slaves}[1]{address} // ""')" = "" ]
ok $? "the master's status shows the one slave in sync, no request as a slave" ||
    sjson "$MASTER" | head -c 2000 >&2

# ---- a fake master with malformed metadata answers ----------------------------------------------
# Its HA link is accepted and left silent, its epoch table is empty; its answers to metadata
# requests are, in turn:
# topics.json that is not JSON; a topic with 70000 queues; a length above 16 MiB; a file cut
# short, and that one again from then on.
T=$T perl -MIO::Socket::INET -e '
    my $port = shift;
    $SIG{PIPE} = "IGNORE"; # a slave that closes first costs the answer, not the server
    sub file { my ($n, $d) = @_; pack("n", length $n) . $n . pack("N", length $d) . $d }
    my $good = file("subscriptionGroup.json", "{\"subscriptionGroupTable\":{\"GX\":{\"groupName\":\"GX\"}}}");
    my $b1 = file("topics.json", "{\"topicConfigTable\":{\"Evil\":") . $good;
    my $b2 = file("topics.json", "{\"topicConfigTable\":{\"Evil\":{\"topicName\":\"Evil\",\"readQueueNums\":70000,\"writeQueueNums\":8,\"perm\":6}}}") . $good;
    my $b4 = file("topics.json", "{\"topicConfigTable\":{}}");
    substr($b4, 2 + 11, 4) = pack("N", 500);
    my @answers = (pack("l>N", 0, length $b1) . $b1, pack("l>N", 0, length $b2) . $b2,
        pack("l>N", 0, (16 << 20) + 1), pack("l>N", 0, length $b4) . $b4);
    my $l = IO::Socket::INET->new(Listen => 8, LocalAddr => "127.0.0.1", LocalPort => $port,
        ReuseAddr => 1) or die "listen: $!";
    my ($k, @keep) = (0);
    while (my $c = $l->accept) {
        my $h = ""; read($c, $h, 8);
        if ($h ne "\xffSHMQRQ1") { push @keep, $c; next }
        read($c, my $code, 4);
        # The epoch request (code 2): a master with no epoch table, log end 0.
        if (unpack("N", $code) == 2) { print $c pack("l>N", 0, 8) . pack("q>", 0); close $c; next }
        print $c $answers[$k < 3 ? $k : 3]; $k++; close $c;
        # Replaced whole (a reader never sees the file empty, between open and print).
        open(my $o, ">", "$ENV{T}/fake.count.new") or die; print $o "$k\n"; close $o or die;
        rename("$ENV{T}/fake.count.new", "$ENV{T}/fake.count") or die;
    }
' "$FAKE_PORT" >"$T/fake.out" 2>&1 &
FAKE=$!
bg_add $FAKE
sleep 0.3
(umask 077 && mkdir -p "$SLAVE2/config" && cp "$T/groups.json" "$SLAVE2/config/subscriptionGroup.json")
start_slave "$SLAVE2" "$FAKE_PORT" slave2
SLAVE2_PID=$LAST_PID
ok $? "a second slave starts, following the fake master" || diag "$T/slave2.log"
(cd "$SLAVE2/config" && md5sum * 2>/dev/null) >"$T/before.md5"
i=0
while [ "$(cat "$T/fake.count" 2>/dev/null || echo 0)" -lt 7 ] && [ $i -lt 900 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(cat "$T/fake.count" 2>/dev/null || echo 0)" -ge 7 ]
ok $? "the slave asked the fake master for its metadata again and again" ||
    { diag "$T/fake.out"; diag "$T/slave2.log"; }
sleep 1
grep -q "metadata from master 127.0.0.1:$FAKE_PORT refused.*topics.json is not JSON" "$T/slave2.log"
ok $? "topics.json that is not JSON: refused with a log line naming it" || diag "$T/slave2.log"
grep -q "readQueueNums" "$T/slave2.log" &&
    grep -q "refused.*topics.json: damaged entries: 1" "$T/slave2.log"
ok $? "a topic with 70000 queues: refused, the entry named" || diag "$T/slave2.log"
grep -q "refused: answer of 16777217 bytes: at most 16777216 are taken" "$T/slave2.log"
ok $? "an answer above 16 MiB: refused before its body is read" || diag "$T/slave2.log"
grep -q "refused.*file topics.json of 500 bytes" "$T/slave2.log"
ok $? "a file cut short: refused" || diag "$T/slave2.log"
is "$(count_lines "file topics.json of 500 bytes" "$T/slave2.log")" 1 \
    "the same refusal four times in a row is logged once (again after a minute)"
(cd "$SLAVE2/config" && md5sum * 2>/dev/null) >"$T/after.md5"
cmp -s "$T/before.md5" "$T/after.md5"
ok $? "nothing in the slave's config/ changed" || diag "$T/after.md5"
"$CTL" topic --store "$SLAVE2" list --json >"$T/s2list.json" 2>&1
! grep -q Evil "$T/s2list.json"
ok $? "no topic of the fake master's is in its topic table" || diag "$T/s2list.json"
is "$(jpath "$SLAVE2" '$j->{state}')" running "the slave runs on"

stop_pid "$SLAVE2_PID" 600
SLAVE2_PID=""
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
