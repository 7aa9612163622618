#!/bin/sh
# Brokers in controller mode (enableControllerMode=true): a master store and
# its slave, each with a shmq-ctrl-agent, and a group of three controllers:
#   - a bad controllerAddr, or controller mode without one, is refused (exit 2);
#   - the master started before any controller runs keeps trying (status: not
#     connected, failures counted) and registers once the group is up; its
#     controllerAddr names a dead port first: the agent goes on to the others;
#   - the slave, whose controllerAddr names a follower first, is sent to the
#     leader (NOT_LEADER) and registers; each gets a brokerId from the
#     controller (brokerId=0 in their configuration);
#   - the controller elects the store that runs as master, and both stores'
#     status shows the link (connected, the leader, the brokerId, the master);
#   - under a load, the log end each replica reports in its heartbeats moves
#     in the leader's status, and ends at the master's wrote on both;
#   - the master reports the slave in the sync-state set; its whole store
#     killed (-9) under a SYNC_MASTER load: the group elects the slave, which
#     promotes itself (epoch 2) and holds every acknowledged message;
#   - the old master started again turns into a slave of the new master (its
#     divergent tail cut at start) and catches up.
# Waits are bounded (tens of seconds); nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-mode
. "$SRC/tests/helpers/replication.sh"

. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
DEAD=$(free_port) # nothing listens there
# rep_j I ADDR FIELD: FIELD of the replica at ADDR of b1 in controller I's status.
rep_j() {
    set_j "$1" "my (\$r) = grep { \$_->{address} eq '$2' } @{\$s->{replicas}}; \$r ? \$r->{$3} : undef"
}
trap 'ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

S_PORT=$(free_port 2)
M_ADDR="127.0.0.1:$HA_PORT"
S_ADDR="127.0.0.1:$S_PORT"
MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0"
M_CTRL="--set controllerAddr=127.0.0.1:$DEAD;$(caddr 0);$(caddr 1);$(caddr 2)"

# ---- configuration ---------------------------------------------------------------------
"$SHMQD" --store "$T/bad" $SMALL --set enableControllerMode=true --print-config \
    >/dev/null 2>"$T/bad1.err"
is $? 2 "enableControllerMode=true without controllerAddr: exit 2"
grep -q controllerAddr "$T/bad1.err"
ok $? "... and the message names controllerAddr" || diag "$T/bad1.err"
"$SHMQD" --store "$T/bad" $SMALL --set enableControllerMode=true \
    --set "controllerAddr=127.0.0.1:1;nohostport" --print-config >/dev/null 2>"$T/bad2.err"
is $? 2 "a controllerAddr element that is not host:port: exit 2"
"$SHMQD" --store "$T/bad" $SMALL $MODE $M_CTRL --print-config >"$T/conf.out" 2>&1
grep -qx "controllerAddr=127.0.0.1:$DEAD;.*" "$T/conf.out" &&
    grep -qx "enableControllerMode=true" "$T/conf.out"
ok $? "--print-config shows enableControllerMode and controllerAddr" || diag "$T/conf.out"

# ---- the master before the controllers: it keeps trying ---------------------------------
start_broker $MCONF --set brokerRole=SYNC_MASTER $MODE $M_CTRL
ok $? "the master store starts in controller mode" || {
    diag "$T/shmqd.log"
    echo "Bail out! the master store does not start"
    exit 1
}
is "$(worker_field ctrl-agent state)" running "its ctrl-agent runs"
wait_jpath "$MASTER" '$j->{controller}{failures} > 0 ? 1 : 0' 1 300
ok $? "with no controller up, its status counts failed attempts"
is "$(jpath "$MASTER" '$j->{controller}{connected}')" 0 "... and shows it not connected"
"$CTL" status --store "$MASTER" $SMALL >"$T/mstatus0.txt" 2>&1
grep -q "^controller: not connected" "$T/mstatus0.txt"
ok $? "shmqctl status says the controller link is not connected" || diag "$T/mstatus0.txt"

# ---- the group starts; the master registers -----------------------------------------------
t0=$(now_ms)
start_ctrls
wait_jpath "$MASTER" '$j->{controller}{connected}' 1 600
ok $? "the master's agent finds the group's leader" || diag "$T/shmqd.log"
echo "# master linked $(($(now_ms) - t0)) ms after the controllers started"
LI=$(leader_index)
ok "$([ "$LI" != none ] && echo 0 || echo 1)" "one controller leads (n$LI)"
is "$(jpath "$MASTER" '$j->{controller}{leader}')" "$(caddr "$LI")" \
    "the master's status names the leader's client address"
is "$(jpath "$MASTER" '$j->{controller}{broker_id}')" 1 "the controller assigned brokerId 1"
wait_eq 300 1 set_j "$LI" '$s->{masterId}'
ok $? "the controller elects brokerId 1 master of b1"
is "$(set_j "$LI" '$s->{masterAddress}')" "$M_ADDR" "... at the master store's address"
echo "# master elected $(($(now_ms) - t0)) ms after the controllers started"
wait_jpath "$MASTER" '$j->{controller}{master_id}' 1
ok $? "the master's status shows itself master of the set"
grep -q "registered with controller .* as brokerId 1 of b1" "$T/shmqd.log"
ok $? "its log says it registered" || diag "$T/shmqd.log"

# ---- the slave: a follower first in its list ----------------------------------------------
FI=$(((LI + 1) % 3))
F2=$(((LI + 2) % 3))
S_CTRL="--set controllerAddr=$(caddr "$FI");$(caddr "$F2");$(caddr "$LI")"
t0=$(now_ms)
start_ctrl_slave "$SLAVE" "$HA_PORT" "$S_PORT" "$S_CTRL" slave
SLAVE_PID=$LAST_PID
wait_jpath "$SLAVE" '$j->{state}' running
ok $? "the slave store starts in controller mode (brokerId=0)" || diag "$T/slave.log"
wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 300
ok $? "the slave registers and gets brokerId 2" || diag "$T/slave.log"
echo "# slave registered $(($(now_ms) - t0)) ms after its shmqd started"
is "$(jpath "$SLAVE" '$j->{controller}{leader}')" "$(caddr "$LI")" \
    "asked a follower first, it was sent on to the leader"
is "$(jpath "$SLAVE" '$j->{controller}{master_address}')" "$M_ADDR" \
    "the slave's status shows the master the controller elected"
is "$(set_j "$LI" 'scalar @{$s->{replicas}}')" 2 "the controller holds two replicas of b1"
is "$(set_j "$LI" '$s->{masterId}')" 1 "the master is still brokerId 1"
wait_eq 100 1 rep_j "$LI" "$S_ADDR" alive
ok $? "the leader sees the slave alive"
is "$(rep_j "$LI" "$M_ADDR" alive)" 1 "... and the master"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "the slave follows the master" || diag "$T/slave.log"

# ---- under a load, the log ends move in the controller's status --------------------------
m0=$(rep_j "$LI" "$M_ADDR" maxOffset)
s0=$(rep_j "$LI" "$S_ADDR" maxOffset)
send_bg TopicC 20000 300 load
LOAD=$LAST_PID
moved() { # "yes" when both replicas report more than m0 / s0
    local m s
    m=$(rep_j "$LI" "$M_ADDR" maxOffset)
    s=$(rep_j "$LI" "$S_ADDR" maxOffset)
    [ -n "$m" ] && [ -n "$s" ] && [ "$m" -gt "$m0" ] && [ "$s" -gt "$s0" ] && echo yes
}
wait_eq 300 yes moved
ok $? "under the load both replicas' maxOffset move in the leader's status ($m0, $s0 before)"
"$CTL" controller status --controller "$(caddr "$FI")" >"$T/cstatus.txt" 2>&1
grep -q "broker set b1 (cluster DefaultCluster): master 1 $M_ADDR, master epoch 1" \
    "$T/cstatus.txt"
ok $? "shmqctl controller status (a follower's) shows the master" || diag "$T/cstatus.txt"
wait "$LOAD"
sent_ok load 20000
ok $? "the load's 20000 messages are acknowledged" || diag "$T/load.err"
caught_up
ok $? "the slave caught up with the master ($WM)"
ends() { echo "$(rep_j "$LI" "$M_ADDR" maxOffset) $(rep_j "$LI" "$S_ADDR" maxOffset)"; }
wait_eq 100 "$WM $WM" ends
ok $? "both replicas' reported log ends reach the master's wrote" || diag "$(ends)"
"$CTL" status --store "$SLAVE" $SMALL >"$T/sstatus.txt" 2>&1
grep -q "^controller: connected, leader $(caddr "$LI"), brokerId 2" "$T/sstatus.txt"
ok $? "shmqctl status shows the link: connected, the leader, the brokerId" || diag "$T/sstatus.txt"
grep -q "master of the set: brokerId 1 $M_ADDR, epoch 1" "$T/sstatus.txt"
ok $? "... and the set's master" || diag "$T/sstatus.txt"

# ---- the master's store killed: the group elects the slave, which promotes itself --------
wait_eq 300 "1,2" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
ok $? "the master reported the slave in the sync-state set" || diag "$T/shmqd.log"
"$HELPERS/load_producer" --store "$MASTER" --topic TopicF --id 1 --count 200000 --size 200 \
    --async 16 >"$T/fload.out" 2>"$T/fload.err" &
LP=$!
bg_add $LP
i=0
while [ "$(grep -c '^ACK' "$T/fload.out")" -lt 2000 ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill_master_store
wait_eq 600 "2 2" set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"'
ok $? "the controller elects the slave (brokerId 2) master, master epoch 2" || diag "$T/ctrl$LI.log"
echo "# new master elected $(($(now_ms) - t0)) ms after the kill"
wait_jpath "$SLAVE" '$j->{role}{epoch}' 2 600
ok $? "the slave promotes itself: epoch 2" || diag "$T/slave.log"
echo "# the slave promoted $(($(now_ms) - t0)) ms after the kill"
wait_pid $LP 600
ACKED=$(grep -c '^ACK' "$T/fload.out")
[ "$ACKED" -ge 2000 ]
ok $? "the master (SYNC_MASTER) acknowledged $ACKED messages before its store was killed (-9)" ||
    diag "$T/fload.err"
is "$(jpath "$SLAVE" '$j->{replication}{role}')" SYNC_MASTER "its status: SYNC_MASTER (promoted by the group, as RocketMQ's changeToMaster)"
grep -q "the controller elected this store (brokerId 2) master of b1: promoting" "$T/slave.log"
ok $? "its log says the controller's election made it promote" || diag "$T/slave.log"
is "$(jpath "$SLAVE" '(grep { $_->{name} eq "writer" } @{$j->{workers}})[0]{state}')" running \
    "its writer runs"
grep '^ACK' "$T/fload.out" | awk '{print $2}' | sort >"$T/acked.keys"
"$CTL" consume --store "$SLAVE" $SMALL TopicF --group GF1 --json --timeout 3000 \
    >"$T/GF1.json" 2>"$T/GF1.err"
jfield uniq_key <"$T/GF1.json" | sort >"$T/GF1.keys"
comm -23 "$T/acked.keys" "$T/GF1.keys" >"$T/lost.keys"
is "$(wc -l <"$T/lost.keys")" 0 "every message acknowledged before the kill is on the new master"
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 500 --size 300 >"$T/n.out" 2>&1
sent_ok n 500
ok $? "producers send to the new master" || diag "$T/n.out"

# ---- the old master comes back: a slave of the new one --------------------------------------
t0=$(now_ms)
"$SHMQD" --store "$MASTER" $SMALL $MCONF --set brokerRole=SYNC_MASTER $MODE $M_CTRL \
    >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_jpath "$MASTER" '$j->{replication}{role}' SLAVE 600
ok $? "the old master, started again, turns into a slave" || diag "$T/shmqd.log"
echo "# the old master a slave $(($(now_ms) - t0)) ms after its start"
grep -q "the controller names brokerId 2 (127.0.0.1:$S_PORT) master of b1, not this store" \
    "$T/shmqd.log"
ok $? "its log says the controller named the other store" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '$j->{replication}{master}{address}' "127.0.0.1:$S_PORT"
ok $? "it follows the new master's address"
note_workers
"$CTL" send --store "$SLAVE" $SMALL TopicN --count 500 --size 300 >"$T/n2.out" 2>&1
sent_ok n2 500
ok $? "the new master takes more messages" || diag "$T/n2.out"
caught_up "$SLAVE" "$MASTER"
ok $? "the old master catches up with the new one ($WM)" || diag "$T/shmqd.log"
is "$(jpath "$MASTER" '$j->{role}{epoch}')" 2 "... and is in epoch 2"
wait_eq 300 "2 2" set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"'
ok $? "the controller still names brokerId 2 master"
"$CTL" consume --store "$MASTER" $SMALL TopicF --group GF2 --json --timeout 3000 \
    >"$T/GF2.json" 2>"$T/GF2.err"
jfield uniq_key <"$T/GF2.json" | sort >"$T/GF2.keys"
cmp -s "$T/GF1.keys" "$T/GF2.keys"
ok $? "the old master's TopicF is the new master's, message for message"

# ---- stop ----------------------------------------------------------------------------
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
stop_broker
is "$STOP_RC" 0 "the old master store stops cleanly"
stop_ctrls checked
done_testing
