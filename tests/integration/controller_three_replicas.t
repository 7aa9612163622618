#!/bin/sh
# A broker set of three replicas on one machine, as docs/controller.md
# "Deployment" lays it out: three controllers, three stores started with
# broker.conf files (-c) in the documented order (the first master, then the
# two slaves), every store with its own haListenPort and brokerIP1 127.0.0.1:
#   - the group elects the first store, assigns brokerIds 1, 2, 3 in the order
#     of registration, and the master reports both slaves in sync;
#   - the master's whole store is killed (-9): the group elects one of the
#     slaves, which promotes itself and takes messages;
#   - the slave the group did not elect follows the new master by itself (its
#     ctrl-agent saves roleOverride and shmqd starts the store again), with
#     its brokerId kept;
#   - the old master, started again, turns into a slave of the new one;
#   - in the end the three logs end at the same offset and the sync-state set
#     holds all three.
# Waits are bounded; nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-three
. "$SRC/tests/helpers/replication.sh"
. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
trap 'ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

PA=$HA_PORT
PB=$(free_port 2)
PC=$(free_port 2)
while [ "$PC" = "$PB" ] || [ "$PC" = "$PA" ]; do PC=$(free_port 2); done
# conf NAME DIR HAPORT ROLE: the store's broker.conf, as docs/controller.md shows it (with
# the test's small segments).
conf() {
    {
        echo "storePathRootDir=$2"
        echo "brokerClusterName=DefaultCluster"
        echo "brokerName=b1"
        echo "brokerId=0"
        echo "brokerRole=$4"
        [ "$4" = SLAVE ] && echo "haMasterAddress=127.0.0.1:$PA"
        echo "brokerIP1=127.0.0.1"
        echo "listenPort=$(($3 - 1))"
        echo "haListenPort=$3"
        echo "haSecretFile=$HA_SECRET"
        echo "enableControllerMode=true"
        echo "controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"
        echo "$SMALL" | sed -e 's/--set //g' -e 's/ /\n/g'
    } >"$T/$1.conf"
}
conf a "$MASTER" "$PA" SYNC_MASTER
conf b "$SLAVE" "$PB" SLAVE
conf c "$SLAVE2" "$PC" SLAVE
dir_of() { case $1 in a) echo "$MASTER" ;; b) echo "$SLAVE" ;; c) echo "$SLAVE2" ;; esac; }
port_of() { case $1 in a) echo "$PA" ;; b) echo "$PB" ;; c) echo "$PC" ;; esac; }
log_of() { case $1 in a) echo "$T/shmqd.log" ;; *) echo "$T/$1.log" ;; esac; }
# start NAME: shmqd -c NAME.conf in the background (pid in SHMQD_PID, SLAVE_PID or
# SLAVE2_PID, which the cleanup traps stop); 0 once it was seen running.
start() {
    "$SHMQD" -c "$T/$1.conf" >>"$(log_of "$1")" 2>&1 &
    case $1 in
    a) SHMQD_PID=$! ;;
    b) SLAVE_PID=$! ;;
    c) SLAVE2_PID=$! ;;
    esac
    wait_jpath "$(dir_of "$1")" '$j->{state}' running 600
}
pid_of() { case $1 in a) echo "$SHMQD_PID" ;; b) echo "$SLAVE_PID" ;; c) echo "$SLAVE2_PID" ;; esac; }
# stop NAME: SIGTERM, wait (bounded); 0 when it exited 0.
stop() {
    local p
    p=$(pid_of "$1")
    stop_pid "$p" 600
    wait "$p" 2>/dev/null
    case $1 in
    a) SHMQD_PID="" ;;
    b) SLAVE_PID="" ;;
    c) SLAVE2_PID="" ;;
    esac
}
# follows NAME ADDR: "yes" when store NAME runs as a slave connected to ADDR.
follows() {
    jpath "$(dir_of "$1")" "\$j->{state} eq 'running' && \$j->{replication}{role} eq 'SLAVE' &&
        \$j->{replication}{master}{address} eq '$2' ? 'yes' : 'no'"
}

start_ctrls
start a
ok $? "store a starts from its broker.conf (SYNC_MASTER, controller mode)" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '$j->{controller}{master_id}' 1 600
ok $? "the group elects a (brokerId 1)" || diag "$T/shmqd.log"
start b && wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 600
ok $? "store b starts as a's slave and gets brokerId 2" || diag "$T/b.log"
start c && wait_jpath "$SLAVE2" '$j->{controller}{broker_id}' 3 600
ok $? "store c starts as a's slave and gets brokerId 3" || diag "$T/c.log"
note_workers
LI=$(wait_leader)
wait_eq 600 "1,2,3" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
ok $? "the master reports both slaves in the sync-state set"
"$CTL" send --store "$MASTER" $SMALL TopicT --count 500 --size 200 >"$T/s1.out" 2>&1
sent_ok s1 500
ok $? "a (SYNC_MASTER) takes messages" || diag "$T/s1.out"

# ---- the master killed: one slave elected ----------------------------------------------
kill_master_store
wait_eq 600 2 set_j "$LI" '$s->{masterEpoch}'
ok $? "the group elects a new master (master epoch 2)" || diag "$T/ctrl$LI.log"
E=$(set_j "$LI" '$s->{masterId}')
if [ "$E" = 2 ]; then E=b X=c; else E=c X=b; fi
ED=$(dir_of $E)
E_ADDR="127.0.0.1:$(port_of $E)"
is "$(set_j "$LI" '$s->{masterAddress}')" "$E_ADDR" "... one of the slaves ($E)"
wait_jpath "$ED" '$j->{role}{epoch}' 2 600
ok $? "$E promotes itself (epoch 2)" || diag "$(log_of $E)"
"$CTL" send --store "$ED" $SMALL TopicT --count 500 --size 200 >"$T/s2.out" 2>&1
sent_ok s2 500
ok $? "$E takes messages" || diag "$T/s2.out"

# ---- the slave not elected --------------------------------------------------------------
XID=$(jpath "$(dir_of $X)" '$j->{controller}{broker_id}')
wait_eq 300 yes follows $X "$E_ADDR"
ok $? "$X, the slave not elected, follows the new master by itself" || diag "$(log_of $X)"
grep -q "master of .*, not the one it follows: starting again as its slave" "$(log_of $X)"
ok $? "... its log says why it started again" || diag "$(log_of $X)"
wait_jpath "$(dir_of $X)" '$j->{controller}{broker_id}' "$XID" 300
ok $? "... and keeps its brokerId ($XID)"

# ---- the old master comes back ------------------------------------------------------------
start a
wait_eq 600 yes follows a "$E_ADDR"
ok $? "a, started again, turns into a slave of $E" || diag "$T/shmqd.log"
note_workers
"$CTL" send --store "$ED" $SMALL TopicT --count 500 --size 200 >"$T/s3.out" 2>&1
sent_ok s3 500
ok $? "$E takes more messages" || diag "$T/s3.out"
caught_up "$ED" "$MASTER" && W1=$WM && caught_up "$ED" "$(dir_of $X)" && [ "$WM" = "$W1" ]
ok $? "the three logs end at the same offset ($WM)"
wait_eq 600 "1,2,3" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
ok $? "the sync-state set holds the three again"

for s in a b c; do
    stop $s
done
stop_ctrls checked
done_testing
