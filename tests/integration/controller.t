#!/bin/sh
# A group of three shmq-controllers on 127.0.0.1:
#   - bad configuration values are refused (exit 2) with a message naming the key;
#   - the three elect exactly one leader, and all agree on it;
#   - a fake broker registers three replicas of one broker set (brokerIds 1, 2, 3
#     assigned in order) and heartbeats; a follower answers NOT_LEADER with the
#     leader's client address; every controller's status shows the set;
#   - ALTER_SYNC_STATE_SET is taken from the master only, with its epoch, and
#     never without the master;
#   - the master's heartbeats stop: a new master is elected from the sync-state
#     set, with a higher epoch; a replica outside the set is never elected;
#   - kill -9 of the Raft leader: a new leader, the state preserved; the killed
#     one restarted rejoins with the state;
#   - two of three stopped: no leader, commands refused with NO_LEADER or
#     NOT_LEADER; one started again: service resumes;
#   - with enableElectUncleanMaster=true the replica outside the set is elected;
#   - hostile frames (a 2 GB length, broken JSON, an unknown command) are
#     refused, connections past 256 are refused, and the controller goes on
#     serving; snapshots are kept in each store; SIGTERM stops each cleanly.
# Waits are bounded (tens of seconds); nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller

. "$SRC/tests/helpers/controller.sh"
CLIENT="perl $SRC/tests/helpers/controller_client.pl"
[ -x "$CONTROLLER" ] || {
    echo "Bail out! $CONTROLLER not built"
    exit 1
}
ALL="$(caddr 0),$(caddr 1),$(caddr 2)"
TIMEOUT_MS=1500
UNCLEAN=false
CTRL_EXTRA="--set controllerSnapshotThreshold=4"
# req I JSON: the answer of controller I to one request.
req() { $CLIENT "$(caddr "$1")" "$2"; }
# jf JSON-TEXT FIELD
jf() { printf '%s\n' "$1" | jfield "$2"; }

# ---- bad configuration ------------------------------------------------------------------
"$CONTROLLER" --set controllerDLegerSelfId=n0 >/dev/null 2>"$T/bad1.err"
is $? 2 "no controllerDLegerPeers: exit 2"
grep -q controllerDLegerPeers "$T/bad1.err"
ok $? "... and the message names the key" || diag "$T/bad1.err"
"$CONTROLLER" --set "controllerDLegerPeers=$PEERS" --set controllerDLegerSelfId=n7 \
    >/dev/null 2>"$T/bad2.err"
is $? 2 "a self id outside the peers: exit 2"
"$CONTROLLER" --set "controllerDLegerPeers=n0-localhost:9877" --set controllerDLegerSelfId=n0 \
    >/dev/null 2>"$T/bad3.err"
is $? 2 "a peer that is not an IPv4 address: exit 2"
"$CONTROLLER" --set "controllerDLegerPeers=n0-127.0.0.1:9877;n0-127.0.0.1:9878" \
    --set controllerDLegerSelfId=n0 >/dev/null 2>"$T/bad4.err"
is $? 2 "a peer id twice: exit 2"
"$CONTROLLER" --set "controllerDLegerPeers=$PEERS" --set controllerDLegerSelfId=n0 \
    --set enableElectUncleanMaster=maybe >/dev/null 2>"$T/bad5.err"
is $? 2 "enableElectUncleanMaster=maybe: exit 2"
"$CONTROLLER" --set "controllerDLegerPeers=$PEERS" --set controllerDLegerSelfId=n0 \
    --set controllerBrokerTimeoutMillis=5x >/dev/null 2>"$T/bad6.err"
is $? 2 "controllerBrokerTimeoutMillis=5x: exit 2"
grep -q 'controllerBrokerTimeoutMillis=5x' "$T/bad6.err"
ok $? "... and the message names the key and the value" || diag "$T/bad6.err"
printf 'controllerDLegerPeers=%s\ncontrollerDLegerSelfId n0\n' "$PEERS" >"$T/bad.conf"
"$CONTROLLER" -c "$T/bad.conf" >/dev/null 2>"$T/bad7.err"
is $? 2 "a config file with a line that is not key=value: exit 2"
grep -q "bad.conf:2" "$T/bad7.err"
ok $? "... and the message names the file and the line" || diag "$T/bad7.err"

# ---- three controllers elect one leader -------------------------------------------------
t0=$(now_ms)
start_ctrls
agreed() { # the leader's Raft id when all three name the same one, else "no"
    local a b c
    a=$(status_j 0 '$j->{leaderRaftId}')
    b=$(status_j 1 '$j->{leaderRaftId}')
    c=$(status_j 2 '$j->{leaderRaftId}')
    if [ -n "$a" ] && [ "$a" != 0 ] && [ "$a" = "$b" ] && [ "$a" = "$c" ]; then
        echo agreed
    else
        echo no
    fi
}
wait_eq 300 agreed agreed
ok $? "the three controllers agree on a leader" || diag "$T/ctrl0.log"
echo "# first election: $(($(now_ms) - t0)) ms from start"
leaders=0
for i in 0 1 2; do
    [ "$(status_j $i '$j->{self}{role}')" = leader ] && leaders=$((leaders + 1))
done
is $leaders 1 "exactly one of them is leader"
LI=$(leader_index)
L=$(caddr "$LI")
F=$(((LI + 1) % 3))
wait_eq 100 "$L" status_j "$F" '$j->{leader}'
ok $? "a follower knows the leader's client address"

# ---- a fake broker registers three replicas ---------------------------------------------
for r in 1 2 3; do
    a=$(req "$LI" "{\"cmd\":\"register\",\"brokerName\":\"b1\",\"clusterName\":\"c1\",\"brokerAddress\":\"127.0.0.1:1091$r\"}")
    is "$(jf "$a" brokerId)" "$r" "replica $r registers and gets brokerId $r"
done
a=$(req "$F" '{"cmd":"register","brokerName":"b1","brokerAddress":"127.0.0.1:10919"}')
is "$(jf "$a" code)" NOT_LEADER "a follower refuses a register: NOT_LEADER"
is "$(jf "$a" leader)" "$L" "... and names the leader's client address"
for r in 1 2 3; do
    $CLIENT --heartbeat "$ALL" b1 $r $((r * 100)) 0 >/dev/null 2>&1 &
    eval "HB$r=$!"
    bg_add $!
done
for i in 0 1 2; do
    wait_eq 100 "3 1 1" set_j $i '@{$s->{replicas}} . " $s->{masterId} $s->{masterEpoch}"'
    ok $? "controller n$i shows 3 replicas of b1, master 1 at epoch 1"
done
"$CTL" controller status --controller "$(caddr "$F")" >"$T/status.txt" 2>&1
grep -q "broker set b1 (cluster c1): master 1 127.0.0.1:10911, master epoch 1" "$T/status.txt"
ok $? "shmqctl controller status shows the master as text" || diag "$T/status.txt"
grep -c "^  replica" "$T/status.txt" | grep -qx 3
ok $? "... and the three replicas"
a=$(req "$LI" '{"cmd":"heartbeat","brokerName":"b1","brokerId":9,"maxOffset":0,"epoch":0}')
is "$(jf "$a" code)" NOT_REGISTERED "a heartbeat of an unknown replica is refused"

# ---- the sync-state set --------------------------------------------------------------------
a=$(req "$LI" '{"cmd":"alter_sync_state_set","brokerName":"b1","masterId":2,"masterEpoch":1,"syncStateSet":[1,2]}')
is "$(jf "$a" code)" REFUSED "ALTER_SYNC_STATE_SET from a replica that is not the master: refused"
a=$(req "$LI" '{"cmd":"alter_sync_state_set","brokerName":"b1","masterId":1,"masterEpoch":7,"syncStateSet":[1,2]}')
is "$(jf "$a" code)" REFUSED "... with another master epoch: refused"
a=$(req "$LI" '{"cmd":"alter_sync_state_set","brokerName":"b1","masterId":1,"masterEpoch":1,"syncStateSet":[2]}')
is "$(jf "$a" code)" REFUSED "... without the master in the set: refused"
a=$(req "$LI" '{"cmd":"alter_sync_state_set","brokerName":"b1","masterId":1,"masterEpoch":1,"syncStateSet":[1,2]}')
is "$(jf "$a" ok) $(jf "$a" syncStateSetEpoch)" "1 2" "from the master with its epoch: the set is {1,2}, epoch 2"

# ---- the master's heartbeats stop ------------------------------------------------------------
kill "$HB1"
t0=$(now_ms)
seen=""
i=0
while [ $i -lt 300 ]; do
    m=$(set_j "$LI" '$s->{masterId}')
    seen="$seen $m"
    [ "$m" = 2 ] && break
    sleep 0.1
    i=$((i + 1))
done
is "$m" 2 "the master's heartbeats stopped: brokerId 2 (in the sync-state set) is master"
echo "# failover: $(($(now_ms) - t0)) ms after the last heartbeat's sender stopped (timeout $TIMEOUT_MS ms)"
case " $seen " in *" 3 "*) ok 1 "brokerId 3 was never master" ;; *) ok 0 "brokerId 3 was never master" ;; esac
is "$(set_j "$LI" '$s->{masterEpoch}')" 2 "... with a higher master epoch (2)"
is "$(set_j "$LI" 'join ",", @{$s->{syncStateSet}}')" 2 "... and the sync-state set is {2}"
for i in 0 1 2; do
    wait_eq 100 "2 2" set_j $i '"$s->{masterId} $s->{masterEpoch}"'
    ok $? "controller n$i holds master 2 at epoch 2"
done

kill "$HB2"
sleep $((TIMEOUT_MS * 4 / 1000 + 1))
is "$(set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"')" "2 2" \
    "master 2 silent too: brokerId 3, outside the sync-state set, is not elected"
grep -q "b1: no new master" "$T/ctrl$LI.log"
ok $? "... and the leader says why" || diag "$T/ctrl$LI.log"

# ---- kill -9 the Raft leader ---------------------------------------------------------------
OLD=$LI
t0=$(now_ms)
kill -KILL "$(cpid "$OLD")"
wait "$(cpid "$OLD")" 2>/dev/null
newleader() {
    local i
    for i in 0 1 2; do
        [ $i = "$OLD" ] && continue
        if [ "$(status_j $i '$j->{self}{role}')" = leader ]; then
            echo yes
            return
        fi
    done
    echo no
}
wait_eq 300 yes newleader
ok $? "the Raft leader killed: another controller leads"
echo "# leader failover: $(($(now_ms) - t0)) ms after kill -9"
LI=$(leader_index)
isnt_old=$([ "$LI" != "$OLD" ] && echo 0 || echo 1)
ok "$isnt_old" "... not the killed one"
wait_eq 100 "2 2 3 3" set_j "$LI" '"$s->{masterId} $s->{masterEpoch} " . @{$s->{replicas}} . " $s->{syncStateSetEpoch}" '
ok $? "the new leader holds the state: master 2, epoch 2, 3 replicas, sync epoch 3" ||
    diag "$T/ctrl$LI.log"
start_ctrl "$OLD"
wait_eq 300 "follower 2 2 3" status_j "$OLD" '$j->{self}{role} . " " . join(" ", map { ($_->{masterId}, $_->{masterEpoch}, scalar @{$_->{replicas}}) } grep { $_->{brokerName} eq "b1" } @{$j->{brokerSets}})'
ok $? "the killed controller restarted rejoins as a follower with the state" || diag "$T/ctrl$OLD.log"
grep -q "state restored from a snapshot" "$T/ctrl$OLD.log"
ok $? "... starting from its own snapshot (controllerSnapshotThreshold=4)" || diag "$T/ctrl$OLD.log"

# ---- two of three stopped: no leader; one back: service ------------------------------------
A=$(((LI + 1) % 3))
B=$(((LI + 2) % 3))
stop_ctrl "$A"
is $? 0 "SIGTERM stops controller n$A cleanly (exit 0)"
stop_ctrl "$B"
is $? 0 "SIGTERM stops controller n$B cleanly (exit 0)"
noleader() { # "yes" once the survivor neither leads nor knows a leader
    local r
    r=$(status_j "$LI" '"$j->{self}{role} $j->{leaderRaftId}"')
    case "$r" in leader*) echo no ;; *" 0") echo yes ;; *) echo no ;; esac
}
wait_eq 300 yes noleader
ok $? "the survivor alone steps down: no leader" || diag "$T/ctrl$LI.log"
a=$(req "$LI" '{"cmd":"register","brokerName":"b2","brokerAddress":"127.0.0.1:20911"}')
case "$(jf "$a" code)" in NO_LEADER | NOT_LEADER) r=0 ;; *) r=1 ;; esac
ok $r "a register without a quorum is refused ($(jf "$a" code))"
is "$(set_j "$LI" '$s->{masterId}')" 2 "... and status still answers with the state"
start_ctrl "$A"
has_leader() {
    local i
    for i in "$LI" "$A"; do
        [ "$(status_j $i '$j->{self}{role}')" = leader ] && echo yes && return
    done
    echo no
}
wait_eq 300 yes has_leader
ok $? "one controller back: a leader again" || diag "$T/ctrl$A.log"
LI=$(leader_index)
a=$(req "$LI" '{"cmd":"register","brokerName":"b2","brokerAddress":"127.0.0.1:20911"}')
is "$(jf "$a" ok) $(jf "$a" brokerId)" "1 1" "... and a register of a new broker set succeeds"
start_ctrl "$B"
wait_eq 300 "1" status_j "$B" 'scalar grep { $_->{brokerName} eq "b2" } @{$j->{brokerSets}}'
ok $? "the third one back catches up (b2 is there)" || diag "$T/ctrl$B.log"

# ---- enableElectUncleanMaster=true ----------------------------------------------------------
for i in 0 1 2; do
    stop_ctrl $i
done
UNCLEAN=true
start_ctrls
wait_eq 400 "3" set_j 0 '$s->{masterId}'
ok $? "with enableElectUncleanMaster=true the live replica outside the set (3) is elected" ||
    diag "$T/ctrl0.log"
is "$(set_j 0 '$s->{masterEpoch}')" 3 "... at master epoch 3"

# ---- hostile frames -----------------------------------------------------------------------
LI=$(leader_index)
[ "$LI" = none ] && LI=0
a=$($CLIENT "$(caddr "$LI")" --raw '\x7f\xff\xff\xff{}')
is "$a" closed "a frame announcing 2 GB: the connection is closed"
a=$($CLIENT "$(caddr "$LI")" --raw '\x00\x00\x00\x05{cmd:')
is "$(jf "$a" code)" BAD_REQUEST "broken JSON: BAD_REQUEST"
a=$(req "$LI" '{"cmd":"drop_everything"}')
is "$(jf "$a" code)" BAD_REQUEST "an unknown command: BAD_REQUEST"
a=$(req "$LI" '{"cmd":"member","memberId":1,"address":"10.0.0.1:1"}')
is "$(jf "$a" code)" BAD_REQUEST "a command only the leader writes to the log: BAD_REQUEST"
a=$(req "$LI" '{"cmd":"register","brokerName":"","brokerAddress":"127.0.0.1:1"}')
is "$(jf "$a" code)" BAD_REQUEST "an empty brokerName: BAD_REQUEST"
perl -MIO::Socket::INET -e '
    my @s;
    for (1 .. 300) { my $c = IO::Socket::INET->new(PeerAddr => $ARGV[0], Timeout => 5) or last; push @s, $c }
    sleep 1;
    print scalar(@s), "\n"' "$(caddr "$LI")" >"$T/conns.out"
wait_eq 50 yes sh -c "grep -q 'refused: 256 connections already' '$T/ctrl$LI.log' && echo yes"
ok $? "300 connections at once: those past 256 are refused" || diag "$T/ctrl$LI.log"
wait_eq 100 1 status_j "$LI" '$j->{ok}'
ok $? "the controller goes on serving"
for i in 0 1 2; do
    ls "$T/ctrl$i"/snapshot-* >/dev/null 2>&1
    ok $? "controller n$i keeps snapshots in its controllerStorePath"
done

kill "$HB3"
for i in 0 1 2; do
    stop_ctrl $i
    is $? 0 "SIGTERM stops controller n$i cleanly (exit 0)"
done
grep -q "snapshot at applied index" "$T"/ctrl*.log
ok $? "the controllers took snapshots of the state (controllerSnapshotThreshold=4)"
done_testing
