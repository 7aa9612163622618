# Shared shell functions of the controller tests (controller.t, controller_mode.t):
# three shmq-controller members on 127.0.0.1, started and stopped one by one, and
# their status read as JSON.  Source after broker.sh.
#
# Settings read when a member starts: TIMEOUT_MS (controllerBrokerTimeoutMillis,
# 1500), UNCLEAN (enableElectUncleanMaster, false), CTRL_EXTRA (more --set options).

CONTROLLER="$BUILD/shmq-controller"

# Three Raft ports P, each with P-1 free for the client port, the six all different.
P0=$(free_port 2)
P1=$P0
while [ $((P1 - P0)) -ge -2 ] && [ $((P1 - P0)) -le 2 ]; do P1=$(free_port 2); done
P2=$P0
while { [ $((P2 - P0)) -ge -2 ] && [ $((P2 - P0)) -le 2 ]; } ||
    { [ $((P2 - P1)) -ge -2 ] && [ $((P2 - P1)) -le 2 ]; }; do
    P2=$(free_port 2)
done
PEERS="n0-127.0.0.1:$P0;n1-127.0.0.1:$P1;n2-127.0.0.1:$P2"
CPID0=""
CPID1=""
CPID2=""

# caddr I: the client address of controller I (its Raft port - 1).
caddr() {
    case $1 in
    0) echo "127.0.0.1:$((P0 - 1))" ;;
    1) echo "127.0.0.1:$((P1 - 1))" ;;
    2) echo "127.0.0.1:$((P2 - 1))" ;;
    esac
}

# start_ctrl I: controller nI in the background (its log $T/ctrlI.log), its pid in CPIDI.
start_ctrl() {
    "$CONTROLLER" --set "controllerDLegerPeers=$PEERS" --set controllerDLegerSelfId=n$1 \
        --set controllerStorePath="$T/ctrl$1" --set controllerListen="$(caddr "$1")" \
        --set controllerElectionTimeoutMillis=300 \
        --set controllerBrokerTimeoutMillis="${TIMEOUT_MS:-1500}" \
        --set enableElectUncleanMaster="${UNCLEAN:-false}" $CTRL_EXTRA >>"$T/ctrl$1.log" 2>&1 &
    eval "CPID$1=$!"
    bg_add $!
}

# start_ctrls: the three members, n0 to n2.
start_ctrls() {
    local i
    for i in 0 1 2; do
        start_ctrl $i
    done
}

# need_ctrl_agent: bail out unless shmq-controller and shmq-ctrl-agent are built.
need_ctrl_agent() {
    [ -x "$CONTROLLER" ] && [ -x "$BUILD/shmq-ctrl-agent" ] && return 0
    echo "Bail out! shmq-controller or shmq-ctrl-agent not built in $BUILD"
    exit 1
}

# cpid I: controller I's pid.
cpid() { eval "echo \$CPID$1"; }

# stop_ctrl I: SIGTERM, wait; its exit status.
stop_ctrl() {
    local p
    p=$(cpid "$1")
    kill -TERM "$p" 2>/dev/null
    wait "$p"
}

# ctrl_cleanup: stop every controller still running (bounded).
ctrl_cleanup() {
    local i p
    for i in 0 1 2; do
        p=$(cpid $i)
        [ -n "$p" ] && stop_pid "$p" 100
    done
}

# status_j I EXPR: perl EXPR over controller I's status ($j), empty when it does not answer.
status_j() {
    "$CTL" controller status --controller "$(caddr "$1")" --json --timeout 3000 2>/dev/null |
        perl -MJSON::PP -e 'my $l = <STDIN>; exit 0 unless $l; my $j = decode_json($l);
            my $v = eval $ARGV[0]; print defined $v ? (JSON::PP::is_bool($v) ? ($v ? 1 : 0) : $v) : "", "\n"' "$2"
}

# set_j I EXPR: EXPR over broker set b1 ($s) in controller I's status.
set_j() {
    status_j "$1" "my (\$s) = grep { \$_->{brokerName} eq 'b1' } @{\$j->{brokerSets}}; \$s ? do { $2 } : undef"
}

# wait_eq TENTHS WANT CMD...: run CMD until it prints WANT, at most TENTHS tenths of a second.
wait_eq() {
    local lim=$1 want=$2 i=0
    shift 2
    while [ $i -lt "$lim" ]; do
        [ "$("$@")" = "$want" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# leader_index: the index of the controller that says it leads, or "none".
leader_index() {
    local i
    for i in 0 1 2; do
        if [ "$(status_j $i '$j->{self}{role}')" = leader ]; then
            echo $i
            return
        fi
    done
    echo none
}

# wait_leader: the index of the controller that leads once one does (at most 10 s), or "none".
wait_leader() {
    local l i=0
    l=$(leader_index)
    while [ "$l" = none ] && [ $i -lt 100 ]; do
        sleep 0.1
        l=$(leader_index)
        i=$((i + 1))
    done
    echo "$l"
}

# stop_ctrls [checked]: stop the three controllers (with "checked", a test that each
# stopped cleanly); the cleanup has nothing left to stop.
stop_ctrls() {
    local i
    for i in 0 1 2; do
        stop_ctrl $i
        [ "$1" = checked ] && is $? 0 "controller n$i stops cleanly"
    done
    CPID0=""
    CPID1=""
    CPID2=""
}

# start_ctrl_slave DIR MASTER_HA_PORT HA_PORT CTRLS LOGNAME: shmqd of a slave store in controller
# mode ($MODE) following 127.0.0.1:MASTER_HA_PORT, its haListenPort HA_PORT (listenPort one
# below), the controller settings CTRLS (words); its log $T/LOGNAME.log, its pid in LAST_PID.
# Needs replication.sh (sconf).
start_ctrl_slave() {
    "$SHMQD" --store "$1" $SMALL $(sconf "$2") --set haListenPort=$3 \
        --set listenPort=$(($3 - 1)) $MODE $4 >>"$T/$5.log" 2>&1 &
    LAST_PID=$!
    bg_add $LAST_PID
}

# kill_master_store: the master store's shmqd and every worker of it killed (-9) at once, at
# t0 (now_ms); SHMQD_PID emptied once shmqd is reaped.
kill_master_store() {
    local pids
    pids="$SHMQD_PID $(all_worker_pids)"
    t0=$(now_ms)
    kill -9 $pids 2>/dev/null
    wait "$SHMQD_PID" 2>/dev/null
    SHMQD_PID=""
}
