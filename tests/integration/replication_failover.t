#!/bin/sh
# Manual failover without divergence: a SYNC_MASTER M and its slave S under
# load; M killed (-9) mid-load: every message M acknowledged is on S;
# `shmqctl role --promote` turns S into a master (epoch 2 from its log's
# end, its ha-sender listening on its own port, producers accepted) and S
# stays one across a restart of its shmqd although its broker.conf says
# SLAVE; M started again alone as a master takes messages S never sees; M
# brought back as a slave of S (`shmqctl role --slave`) cuts exactly its
# divergent tail (the count in its log is what only it held), then its
# CommitLog is byte for byte S's and its consumers see none of the dropped
# messages; a store whose epochs share nothing with S refuses to follow and
# says so; a request with an unknown code on the HA port gets an error
# status and disturbs nothing.  TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-failover
. "$SRC/tests/helpers/replication.sh"

S_PORT=$(free_port)
# S: a slave of M with a port of its own for when it is a master.
SCONF="$(sconf "$HA_PORT") --set haListenPort=$S_PORT --set listenPort=$((S_PORT - 1))"
start_s() {
    "$SHMQD" --store "$SLAVE" $SMALL $SCONF >>"$T/slave.log" 2>&1 &
    SLAVE_PID=$!
    bg_add $SLAVE_PID
    wait_jpath "$SLAVE" '$j->{state}' running
}
stop_s() { # its exit status
    stop_pid "$SLAVE_PID" 600
}
# keys_of STORE TOPIC GROUP: the uniq keys of every message of TOPIC there, sorted, in $T/GROUP.keys
keys_of() {
    "$CTL" consume --store "$1" $SMALL "$2" --group "$3" --json --timeout 3000 \
        >"$T/$3.json" 2>"$T/$3.err"
    jfield uniq_key <"$T/$3.json" | sort >"$T/$3.keys"
}

# ---- M (SYNC_MASTER) and S under load; M killed -------------------------------------------
start_broker $MCONF --set brokerRole=SYNC_MASTER
ok $? "M starts as a SYNC_MASTER" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{role}{epoch}')" 1 "M begins epoch 1"
is "$(jpath "$MASTER" '$j->{role}{epochs}[0]{start}')" 0 "from offset 0"
start_s
ok $? "S starts as its slave" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "M sees S in sync" || diag "$T/slave.log"

"$HELPERS/load_producer" --store "$MASTER" --topic TopicF --id 1 --count 200000 --size 200 \
    --async 16 >"$T/load.out" 2>"$T/load.err" &
LP=$!
bg_add $LP
i=0
while [ "$(grep -c '^ACK' "$T/load.out")" -lt 3000 ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -9 "$SHMQD_PID"
wait "$SHMQD_PID" 2>/dev/null
SHMQD_PID=""
wait_pid $LP 600
ACKED=$(grep -c '^ACK' "$T/load.out")
[ "$ACKED" -ge 3000 ]
ok $? "M acknowledged $ACKED messages before it was killed (-9)" || diag "$T/load.err"
wait_jpath "$SLAVE" '$j->{replication}{master}{connected}' 0
ok $? "S sees the link down"

# ---- S promoted ----------------------------------------------------------------------------
X=$(jpath "$SLAVE" '$j->{positions}{wrote}')
"$CTL" role --store "$SLAVE" $SMALL --promote >"$T/promote.out" 2>"$T/promote.err"
ok $? "shmqctl role --promote succeeds" || { diag "$T/promote.err"; diag "$T/slave.log"; }
grep -q "epoch 2 from offset $X" "$T/promote.out"
ok $? "it says: epoch 2 from S's log end $X" || diag "$T/promote.out"
is "$(jpath "$SLAVE" '$j->{replication}{role}')" ASYNC_MASTER "S's status: ASYNC_MASTER"
is "$(jpath "$SLAVE" '$j->{role}{role_source}')" roleOverride "the role comes from roleOverride"
is "$(jpath "$SLAVE" 'join " ", map { "$_->{epoch}\@$_->{start}" } @{$j->{role}{epochs}}')" \
    "1@0 2@$X" "S's epoch table: 1 from 0, 2 from $X"
is "$(jpath "$SLAVE" '(grep { $_->{name} eq "writer" } @{$j->{workers}})[0]{state}')" running \
    "S's writer runs"
log_has "$T/slave.log" 1 "listening for slaves on 0.0.0.0:$S_PORT"
ok $? "S's ha-sender listens on S's haListenPort" || diag "$T/slave.log"

grep '^ACK' "$T/load.out" | awk '{print $2}' | sort >"$T/acked.keys"
keys_of "$SLAVE" TopicF GS1
comm -23 "$T/acked.keys" "$T/GS1.keys" >"$T/lost.keys"
is "$(wc -l <"$T/lost.keys")" 0 "every message M acknowledged (SYNC_MASTER) is on S"
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 500 --size 300 >"$T/n.out" 2>&1
sent_ok n 500
ok $? "producers send to S now" || diag "$T/n.out"
"$CTL" send --store "$SLAVE" $SMALL TopicF --count 500 --size 300 >"$T/f.out" 2>&1
sent_ok f 500
ok $? "also to the topic M's log filled" || diag "$T/f.out"
keys_of "$SLAVE" TopicF GS2
[ "$(wc -l <"$T/GS2.keys")" -eq $(($(wc -l <"$T/GS1.keys") + 500)) ] &&
    [ "$(sort -u "$T/GS2.keys" | wc -l)" -eq "$(wc -l <"$T/GS2.keys")" ]
ok $? "its queues continue where M's log left them: a consumer reads all $(wc -l <"$T/GS2.keys"), each once" ||
    diag "$T/GS2.err"

stop_s
ok $? "S stops" || diag "$T/slave.log"
start_s
ok $? "S starts again (its broker.conf still says SLAVE)" || diag "$T/slave.log"
is "$(jpath "$SLAVE" '$j->{replication}{role}')" ASYNC_MASTER "it is still a master"
is "$(jpath "$SLAVE" '$j->{role}{epoch}')" 2 "in epoch 2 (a restart keeps the epoch)"
grep -q "role ASYNC_MASTER from .*roleOverride (broker.conf says SLAVE" "$T/slave.log"
ok $? "its log says where the role comes from" || diag "$T/slave.log"
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 500 --size 300 >"$T/n.out" 2>&1
sent_ok n 500
ok $? "and takes messages" || diag "$T/n.out"

# ---- M again, alone, as a master: divergent messages ---------------------------------------
start_broker $MCONF
ok $? "M starts again as a master, alone" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{role}{epoch}')" 1 "still in epoch 1"
# What M holds beyond X was never on S: the unacknowledged tail of the load.
keys_of "$MASTER" TopicF GM1
TAIL=$(perl -MJSON::PP -ne 'my $m = JSON::PP->new->decode($_); $n++ if $m->{phys_offset} >= '"$X"';
    END { print $n + 0, "\n" }' "$T/GM1.json")
"$CTL" send --store "$MASTER" $SMALL TopicD --count 300 --size 250 >"$T/d.out" 2>&1
sent_ok d 300
ok $? "300 messages on M alone (M's tail beyond $X before them: $TAIL)" || diag "$T/d.out"
stop_broker
ok $? "M stops" || diag "$T/shmqd.log"
cp -r "$MASTER/commitlog" "$T/m-commitlog-before"

# ---- M back as a slave of S ------------------------------------------------------------------
"$CTL" role --store "$MASTER" $SMALL --slave --master "127.0.0.1:$S_PORT" >"$T/role.out" 2>&1
ok $? "shmqctl role --slave --master S on the stopped M" || diag "$T/role.out"
# S is down when M starts: M cannot check its log at start, so it does not follow
# before its ha-receiver has seen S's epoch table; then shmqd starts M again to cut.
stop_s
ok $? "S stops for a while" || diag "$T/slave.log"
MARK=$(wc -l <"$T/shmqd.log")
"$SHMQD" --store "$MASTER" $SMALL $MCONF >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_jpath "$MASTER" '$j->{state}' running
ok $? "M starts, as a slave of S (S down)" || diag "$T/shmqd.log"
grep -q "epoch check not done at start" "$T/shmqd.log"
ok $? "M says its log could not be checked at start" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{replication}{master}{connected}')" 0 "M does not follow S unchecked"
start_s
ok $? "S starts again" || diag "$T/slave.log"
log_has "$T/shmqd.log" 1 "were never replicated; dropped"
grep -q "the store starts again to cut it" "$T/shmqd.log"
ok $? "M's ha-receiver sees the divergence and shmqd starts the store again" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '$j->{state}' running
ok $? "M runs again, as a slave of S" || diag "$T/shmqd.log"
tail -n +"$MARK" "$T/shmqd.log" >"$T/rejoin.log"
DROPPED=$(sed -n 's/.*: \([0-9][0-9]*\) messages of epoch 1 from offset \([0-9]*\) were never replicated; dropped.*/\1 \2/p' "$T/rejoin.log" |
    awk '{ n += $1; if (!f) { f = $2 } } END { print n + 0, f + 0 }')
is "$DROPPED" "$((TAIL + 300)) $X" "M cut exactly its divergent tail: $((TAIL + 300)) messages of epoch 1 from $X, logged" ||
    diag "$T/rejoin.log"
is "$(jpath "$MASTER" '$j->{replication}{role}')" SLAVE "M's status: SLAVE"
is "$(jpath "$MASTER" 'join " ", map { "$_->{epoch}\@$_->{start}" } @{$j->{role}{epochs}}')" \
    "1@0 2@$X" "M's epoch table is S's"
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 1000 --size 300 --async 16 >"$T/n.out" 2>&1
sent_ok n 1000
ok $? "1000 more messages on S" || diag "$T/n.out"
caught_up "$SLAVE" "$MASTER" # S leads now: WM is S's end, WS M's
is "$WM" "$WS" "M follows S and catches up" || diag "$T/rejoin.log"
# Every segment that holds records is the same file on both; a segment either
# side allocated ahead of its end (starting at or past wrote) holds only zeros.
bad=0
for seg in $(ls "$SLAVE/commitlog" "$MASTER/commitlog" | grep -E '^[0-9]{20}$' | sort -u); do
    fs="$SLAVE/commitlog/$seg" fm="$MASTER/commitlog/$seg"
    if perl -e 'exit(($ARGV[0] + 0) >= ($ARGV[1] + 0) ? 0 : 1)' "$seg" "$WM"; then
        for f in "$fs" "$fm"; do
            [ ! -e "$f" ] || perl -e 'open(my $h, "<", $ARGV[0]) or exit 1; binmode $h;
                while (read($h, my $b, 65536)) { exit 1 if $b =~ /[^\0]/ } exit 0' "$f" || {
                echo "# $f, allocated past wrote $WM, holds data" >&2
                bad=1
            }
        done
        continue
    fi
    cmp -s "$fs" "$fm" || {
        echo "# $seg differs or is missing on one side (wrote $WM); first bytes that differ:" >&2
        cmp -l "$fs" "$fm" 2>&1 | head -n 3 | sed 's/^/#   /' >&2
        echo "#   and the last: $(cmp -l "$fs" "$fm" 2>&1 | tail -n 1)" >&2
        bad=1
    }
done
[ $bad -eq 0 ] || {
    echo "# S: $(ls "$SLAVE/commitlog" | tr '\n' ' ')" >&2
    echo "# M: $(ls "$MASTER/commitlog" | tr '\n' ' ')" >&2
    false
}
ok $? "M's CommitLog is byte for byte S's"
keys_of "$MASTER" TopicD GM2
is "$(wc -l <"$T/GM2.keys")" 0 "M's consumers see none of the 300 dropped messages"
keys_of "$MASTER" TopicF GM3
cmp -s "$T/GM3.keys" "$T/GS2.keys"
ok $? "and exactly S's messages of TopicF ($(wc -l <"$T/GS2.keys"))"
keys_of "$MASTER" TopicN GM4
is "$(wc -l <"$T/GM4.keys")" 2000 "and the 2000 sent to S"

# ---- an unknown request on S's HA port -------------------------------------------------------
# Over the TLS link, with OpenSSL's own client holding the secret's key.
is "$(ha_request "$S_PORT" 99)" "-10019 23 unknown request code 99" \
    "a request with an unknown code, by another TLS client: SHMQ_E_ARG, saying why"
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 100 --size 300 >"$T/n.out" 2>&1
sent_ok n 100
caught_up "$SLAVE" "$MASTER" # S leads now: WM is S's end, WS M's
is "$WM" "$WS" "it disturbs nothing: S takes messages, M follows"

# ---- a store whose epochs share nothing with S -----------------------------------------------
Z="$T/z"
"$SHMQD" --store "$Z" $SMALL --set haListenPort=1 --set listenPort=2 >>"$T/z.log" 2>&1 &
ZP=$!
bg_add $ZP
wait_jpath "$Z" '$j->{state}' running
"$CTL" send --store "$Z" $SMALL TopicZ --count 50 >"$T/z.out" 2>&1
stop_pid $ZP 600
printf '1\n0\n7-0\n' >"$Z/epochFileCheckpoint"
rm -f "$Z/epochFileCheckpoint.bak"
md5sum "$Z"/commitlog/00000000000000000000 >"$T/z.md5"
"$SHMQD" --store "$Z" $SMALL $(sconf "$S_PORT") >>"$T/z.log" 2>&1 &
ZP=$!
bg_add $ZP
wait_pid $ZP 300
is "$?" 2 "a slave whose epochs share nothing with its master's does not start (exit 2)"
grep -q "refusing to follow master 127.0.0.1:$S_PORT: .* shares no epoch" "$T/z.log"
ok $? "and says why" || diag "$T/z.log"
md5sum -c --quiet "$T/z.md5" >/dev/null 2>&1
ok $? "its log is untouched"

stop_s
done_testing
