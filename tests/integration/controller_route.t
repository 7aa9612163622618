#!/bin/sh
# RocketMQ clients follow the master of a broker set in controller mode,
# through the gateways' name-server role (docs/controller.md "Clients
# following the master", docs/gateway.md):
#   - a master store M and a slave store S, both with their gateway, register
#     their gateway addresses with a group of three controllers; the
#     controller's status shows them, each store's status the set's gateways;
#   - both gateways answer routes (GET_ROUTEINFO_BY_TOPIC, cluster info)
#     naming M's gateway as brokerId 0 and S's under its brokerId; S's gateway
#     refuses a send with SERVICE_NOT_AVAILABLE (14) naming M's gateway;
#   - a RocketMQ producer (ali-ons) given both gateways as name servers sends;
#     M's whole store is killed (-9); the group elects S, which promotes
#     itself; the producer's later sends are acknowledged by S's gateway, and
#     every acknowledged message is in S's store;
#   - M started again turns into a slave of S: its gateway names S's gateway
#     as brokerId 0 and refuses sends naming it, and a local `shmqctl send`
#     on it is refused naming S's address.
# The ali-ons part is skipped (saying why) when node/npm or the package are
# missing.  Waits are bounded (tens of seconds).  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-route
. "$SRC/tests/helpers/replication.sh"
. "$SRC/tests/helpers/controller.sh"
[ -x "$CONTROLLER" ] && [ -x "$BUILD/shmq-ctrl-agent" ] && [ -x "$BUILD/shmq-gateway" ] || {
    echo "Bail out! shmq-controller, shmq-ctrl-agent or shmq-gateway not built in $BUILD"
    exit 1
}
trap 'ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

# The RocketMQ client; NODE_SKIP says why when it cannot run.
. "$SRC/tests/helpers/ali_ons.sh"
ali_ons_setup
RC="$SRC/tests/gateway/remoting_client.pl"
TOPIC=TopicR

S_PORT=$(free_port 2)
M_GW="127.0.0.1:$((HA_PORT - 1))"
S_GW="127.0.0.1:$((S_PORT - 1))"
MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0 --set gatewayEnable=true"
CTRLS="--set controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"
# gws DIR: the set's gateways in DIR's status, "[m]ID=ADDR,..." (m: the master)
gws() {
    jpath "$1" 'join ",", map { ($_->{master} ? "m" : "") . "$_->{broker_id}=$_->{address}" }
        @{$j->{controller}{gateways} || []}'
}
# route PORT: the remoting client's route, cluster and send lines, joined by "|"
route() {
    perl "$RC" route "$1" "$TOPIC" 2>>"$T/rc.err" | paste -sd'|'
}

# ---- the group, the master, the slave ------------------------------------------------------
start_ctrls
start_broker $MCONF --set brokerRole=SYNC_MASTER $MODE $CTRLS
ok $? "the master store M starts in controller mode with its gateway" || {
    diag "$T/shmqd.log"
    echo "Bail out! the master store does not start"
    exit 1
}
wait_jpath "$MASTER" '$j->{controller}{master_id}' 1 600
ok $? "the controller elects M (brokerId 1) master of b1" || diag "$T/shmqd.log"
start_ctrl_slave "$SLAVE" "$HA_PORT" "$S_PORT" "$CTRLS" slave
SLAVE_PID=$LAST_PID
wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 600
ok $? "the slave store S registers: brokerId 2" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "S follows M" || diag "$T/slave.log"

# ---- the gateways' addresses at the controller and in the stores ----------------------------
LI=$(leader_index)
reps() {
    set_j "$LI" 'join ",", map { "$_->{brokerId}=$_->{gatewayAddress}" }
        sort { $a->{brokerId} <=> $b->{brokerId} } @{$s->{replicas}}'
}
wait_eq 100 "1=$M_GW,2=$S_GW" reps
ok $? "the controller holds each replica's gateway address" || echo "#   got: $(reps)" >&2
is "$(set_j "$LI" '$s->{masterGatewayAddress}')" "$M_GW" "... and names the master's"
"$CTL" controller status --controller "$(caddr "$LI")" >"$T/cstatus.txt" 2>&1
grep -q "replica 2 127.0.0.1:$S_PORT .*gateway $S_GW" "$T/cstatus.txt"
ok $? "shmqctl controller status shows a replica's gateway" || diag "$T/cstatus.txt"
wait_eq 100 "m1=$M_GW,2=$S_GW" gws "$SLAVE"
ok $? "S's status shows the set's gateways: M's as master, its own" || echo "#   got: $(gws "$SLAVE")" >&2
wait_eq 100 "m1=$M_GW,2=$S_GW" gws "$MASTER"
ok $? "M's status shows the same" || echo "#   got: $(gws "$MASTER")" >&2
"$CTL" status --store "$SLAVE" $SMALL >"$T/sstatus.txt" 2>&1
grep -q "gateways of the set: master 1 $M_GW 2 $S_GW" "$T/sstatus.txt"
ok $? "shmqctl status (text) shows them" || diag "$T/sstatus.txt"

# ---- routes from both gateways -------------------------------------------------------------
want="route 0 b1 0=$M_GW,2=$S_GW|cluster 0 b1 0=$M_GW,2=$S_GW"
r=$(route $((S_PORT - 1)))
is "${r%|send*}" "$want" "S's gateway: the route names M's gateway as brokerId 0, its own as 2"
is "${r#*|send }" "14 not the master of b1: the master is $M_GW" \
    "S's gateway refuses a send: SERVICE_NOT_AVAILABLE naming the master's gateway"
r=$(route $((HA_PORT - 1)))
is "${r%|send*}" "$want" "M's gateway answers the same route"
is "${r#*|send }" "0 -" "M's gateway takes the send"

# ---- a RocketMQ producer through a failover -------------------------------------------------
# kill_m_elect_s: M's whole store killed (-9) at t0; the group elects S, which promotes itself.
kill_m_elect_s() {
    kill_master_store
    wait_eq 600 "2 2" set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"'
    ok $? "M killed (-9): the controller elects S" || diag "$T/ctrl$LI.log"
    wait_jpath "$SLAVE" '$j->{role}{epoch}' 2 600
    ok $? "S promotes itself: epoch 2" || diag "$T/slave.log"
}
# wait_acks GW N: at most 60 s until the producer has N sends acknowledged through gateway GW;
# prints how many it has.
wait_acks() {
    local i=0
    while [ "$(grep -c "^ack .* $1 " "$T/p.out")" -lt "$2" ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    grep -c "^ack .* $1 " "$T/p.out"
}
if [ -n "$NODE_SKIP" ]; then
    for k in 1 2 3 4 5; do
        ok 0 "# SKIP $NODE_SKIP"
    done
    kill_m_elect_s
else
    STOP_FILE="$T/stop" timeout 150 node "$SRC/tests/gateway/client.js" follow \
        "$S_GW;$M_GW" "$TOPIC" rk >"$T/p.out" 2>"$T/p.err" &
    PP=$!
    bg_add $PP
    before=$(wait_acks "$M_GW" 10)
    [ "$before" -ge 10 ]
    ok $? "the producer, given both gateways as name servers, sends to M's ($before acknowledged)" ||
        diag "$T/p.out"
    kill_m_elect_s
    wait_acks "$S_GW" 1 >/dev/null
    echo "# the first send acknowledged by S's gateway $(($(now_ms) - t0)) ms after the kill"
    after=$(wait_acks "$S_GW" 10)
    echo "# 10 sends acknowledged by S's gateway $(($(now_ms) - t0)) ms after the kill"
    [ "$after" -ge 10 ]
    ok $? "the producer's later sends are acknowledged by S's gateway ($after)" ||
        diag "$T/p.out"
    touch "$T/stop"
    wait_pid $PP 300
    wait $PP
    is $? 0 "the producer ends cleanly" || diag "$T/p.err"
    last=$(grep "^ack " "$T/p.out" | tail -1)
    is "$(echo "$last" | cut -d' ' -f3)" "$S_GW" "its last acknowledged send went to S's gateway"
    echo "# $(grep -c '^fail ' "$T/p.out") sends failed during the failover (retried with the next key)"
    grep '^ack ' "$T/p.out" | awk '{print $2}' | sort >"$T/acked.keys"
    "$CTL" consume --store "$SLAVE" $SMALL "$TOPIC" --group GR --json --timeout 3000 \
        >"$T/GR.json" 2>"$T/GR.err"
    jfield keys <"$T/GR.json" | sort >"$T/GR.keys"
    comm -23 "$T/acked.keys" "$T/GR.keys" >"$T/lost.keys"
    is "$(wc -l <"$T/lost.keys")" 0 \
        "every one of the $(wc -l <"$T/acked.keys") acknowledged messages is in S's store" ||
        diag "$T/lost.keys"
fi
sroute() { route $((S_PORT - 1)); }
wait_eq 300 "route 0 b1 0=$S_GW|cluster 0 b1 0=$S_GW|send 0 -" sroute
ok $? "S's gateway now names itself brokerId 0 (M's left out: not alive) and takes sends" ||
    echo "#   got: $(sroute)" >&2

# ---- M again: a slave of S --------------------------------------------------------------------
"$SHMQD" --store "$MASTER" $SMALL $MCONF --set brokerRole=SYNC_MASTER $MODE $CTRLS \
    >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_jpath "$MASTER" '$j->{replication}{role}' SLAVE 600
ok $? "M, started again, turns into a slave of S" || diag "$T/shmqd.log"
"$CTL" send --store "$MASTER" $SMALL "$TOPIC" --count 1 >"$T/local.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "its master 127.0.0.1:$S_PORT sends" "$T/local.out"
ok $? "a local shmqctl send on M is refused naming S's address (exit $rc)" || diag "$T/local.out"
mroute() { route $((HA_PORT - 1)); }
want="route 0 b1 0=$S_GW,1=$M_GW|cluster 0 b1 0=$S_GW,1=$M_GW"
want="$want|send 14 not the master of b1: the master is $S_GW"
wait_eq 300 "$want" mroute
ok $? "M's gateway names S's as brokerId 0, its own as 1, and refuses sends naming S's" ||
    echo "#   got: $(mroute)" >&2

# ---- stop ------------------------------------------------------------------------------------
t0=$(now_ms)
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
echo "# S stopped in $(($(now_ms) - t0)) ms"
stop_broker
is "$STOP_RC" 0 "M stops cleanly"
stop_ctrls
done_testing
