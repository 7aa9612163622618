#!/bin/sh
# Repeated automatic failovers under a synchronous send load: a group of three
# controllers and a broker set of two stores in controller mode (A starts as
# SYNC_MASTER, B as its slave; controllerBrokerTimeoutMillis 1500).  Each round:
#   - the sync-state set holds both replicas (the store started again in the
#     round before caught up and was reported in sync: otherwise nobody could
#     be elected);
#   - a producer of TopicL sends synchronously to the master and records every
#     acknowledged key; the master's whole store is killed (-9) under it;
#   - the group elects the other store, which promotes itself (the master epoch
#     one up) and runs as master; a new producer, attached to it as soon as it
#     takes producers (a slave refuses them), gets its sends acknowledged (in
#     round 1 shmq-bench failover too, refused first);
#   - the killed store, started again with its own settings, turns into a slave
#     of the new master (cutting its divergent tail) and catches up.
# In the end every message acknowledged in any round is on the final master
# exactly once (no loss, no duplicate, every body whole), the final slave holds
# the same, and per round the failover time (kill -> the new master's first
# acknowledged send) is printed.  A store the group promoted is a SYNC_MASTER
# (as RocketMQ's changeToMaster), acknowledging by the whole sync-state set.
#
# Rounds: FO_LOOP_ROUNDS (default 2; make torture: 10).  Waits are bounded;
# nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-failover-loop
. "$SRC/tests/helpers/replication.sh"
. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
trap 'stop_loads; ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

ROUNDS=${FO_LOOP_ROUNDS:-2}
S_PORT=$(free_port 2)
A_ADDR="127.0.0.1:$HA_PORT"
B_ADDR="127.0.0.1:$S_PORT"
MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0"
CTRL="--set controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"
# Each store's settings, the same at every start: what decides its role after the
# first failover is its roleOverride (promoted, or a slave of the group's master).
A_ARGS="$SMALL $MCONF --set brokerRole=SYNC_MASTER $MODE $CTRL"
B_ARGS="$SMALL $(sconf "$HA_PORT") --set haListenPort=$S_PORT --set listenPort=$((S_PORT - 1)) $MODE $CTRL"
LOAD_PID=""
BENCH_PID=""

# store_dir X / store_addr X / store_log X: store X's (A or B) directory, HA address, log.
store_dir() { if [ "$1" = A ]; then echo "$MASTER"; else echo "$SLAVE"; fi; }
store_addr() { if [ "$1" = A ]; then echo "$A_ADDR"; else echo "$B_ADDR"; fi; }
store_log() { if [ "$1" = A ]; then echo "$T/shmqd.log"; else echo "$T/slave.log"; fi; }
other() { if [ "$1" = A ]; then echo B; else echo A; fi; }
# start_store X: shmqd of store X in the background (its pid in SHMQD_PID or SLAVE_PID,
# which the cleanup traps stop); 0 once it was seen running.
start_store() {
    if [ "$1" = A ]; then
        "$SHMQD" --store "$MASTER" $A_ARGS >>"$T/shmqd.log" 2>&1 &
        SHMQD_PID=$!
    else
        "$SHMQD" --store "$SLAVE" $B_ARGS >>"$T/slave.log" 2>&1 &
        SLAVE_PID=$!
    fi
    wait_jpath "$(store_dir "$1")" '$j->{state}' running 600
}
# kill_store X: kill -9 shmqd of store X and every worker of it, at once.
kill_store() {
    local d pids p
    d=$(store_dir "$1")
    pids=$(jpath "$d" 'join(" ", grep { $_ > 0 } map { $_->{pid} } @{$j->{workers}})')
    if [ "$1" = A ]; then pids="$SHMQD_PID $pids"; else pids="$SLAVE_PID $pids"; fi
    for p in $pids; do
        kill -9 "$p" 2>/dev/null
    done
    if [ "$1" = A ]; then
        wait "$SHMQD_PID" 2>/dev/null
        SHMQD_PID=""
    else
        wait "$SLAVE_PID" 2>/dev/null
        SLAVE_PID=""
    fi
}
# start_load X R: a synchronous producer of TopicL (id R) on store X, started at once and
# retrying the attach while X refuses producers (at most 60 s); its pid in LOAD_PID,
# its ACK lines in $T/load.R.
start_load() {
    "$HELPERS/load_producer" --store "$(store_dir "$1")" --topic TopicL --id "$2" \
        --count 100000000 --size 200 --timeout 3000 --open-retry 60000 \
        >"$T/load.$2" 2>"$T/load.$2.err" &
    LOAD_PID=$!
    bg_add $LOAD_PID
}
# stop_loads: the running producer stops (SIGTERM, bounded).
stop_loads() {
    [ -n "$LOAD_PID" ] && stop_pid "$LOAD_PID" 100
    LOAD_PID=""
}
acks() { count_lines '^ACK' "$1"; }
# wait_acks FILE COUNT: until FILE holds COUNT ACK lines (at most 60 s).
wait_acks() {
    local i=0
    while [ "$(acks "$1")" -lt "$2" ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(acks "$1")" -ge "$2" ]
}
# rep_id ADDR: the brokerId the group gave the replica at ADDR.
rep_id() {
    set_j "$(wait_leader)" "my (\$r) = grep { \$_->{address} eq '$1' } @{\$s->{replicas}}; \$r ? \$r->{brokerId} : undef"
}

# ---- the group, then A (elected first), then B ----------------------------------------
start_ctrls
start_store A
ok $? "store A starts in controller mode (SYNC_MASTER)" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '$j->{controller}{master_id}' 1 600
ok $? "the group elects A (brokerId 1) master" || diag "$T/shmqd.log"
start_store B
ok $? "store B starts in controller mode as A's slave" || diag "$T/slave.log"
wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 600
ok $? "B registers as brokerId 2" || diag "$T/slave.log"
ID_A=1
ID_B=2
note_workers

M=A     # the store that is master now
EPOCH=1 # the set's master epoch
start_load A 1
wait_acks "$T/load.1" 200
ok $? "the producer's sends to A are acknowledged" || diag "$T/load.1.err"
: >"$T/figures"

r=1
while [ $r -le "$ROUNDS" ]; do
    O=$(other $M)
    MD=$(store_dir $M)
    OD=$(store_dir $O)
    eval "MID=\$ID_$M"
    eval "OID=\$ID_$O"
    LI=$(wait_leader)
    # ---- both replicas in sync, then the master killed under the load ------------------
    wait_eq 600 "1,2" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
    ok $? "round $r: the sync-state set holds both replicas (master $M)" ||
        diag "$(store_log $O)"
    load=$((r * 10))
    [ $r -eq 1 ] && load=1
    before=$(acks "$T/load.$load")
    wait_acks "$T/load.$load" $((before + 100))
    mrole=$(jpath "$MD" '$j->{replication}{role}')
    ok $? "round $r: the master ($M, $mrole) acknowledges sends" || diag "$T/load.$load.err"
    echo "$load $r $M $mrole" >>"$T/killed"
    t0=$(now_ms)
    kill_store $M
    # Round 1 also runs shmq-bench failover against the slave: refused while it is one.
    # Started before the old load is stopped: that producer may wait out its send's
    # timeout first (its master is gone), and the slave may be promoted meanwhile.
    if [ $r -eq 1 ]; then
        "$BUILD/shmq-bench" failover --store "$OD" --since-ms "$t0" --retry-ms 5 --timeout 60000 \
            --json >"$T/bench.json" 2>"$T/bench.err" &
        BENCH_PID=$!
        bg_add $BENCH_PID
    fi
    stop_loads
    # ---- the group elects the other store; producers go on against it ------------------
    EPOCH=$((EPOCH + 1))
    start_load $O $((r * 10 + 10))
    wait_eq 600 "$OID $EPOCH" set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"'
    ok $? "round $r: the group elects $O (brokerId $OID) master in master epoch $EPOCH" ||
        diag "$T/ctrl$LI.log"
    t_elect=$(now_ms)
    wait_jpath "$OD" '$j->{role}{epoch}' "$EPOCH" 600
    ok $? "round $r: $O promotes itself (epoch $EPOCH)" || diag "$(store_log $O)"
    t_prom=$(now_ms)
    wait_acks "$T/load.$((r * 10 + 10))" 1
    ok $? "round $r: a producer attached to $O gets its sends acknowledged" ||
        diag "$T/load.$((r * 10 + 10)).err"
    t_ack=$(awk '$1 == "FIRST_ACK" { print $2; exit }' "$T/load.$((r * 10 + 10))")
    if [ $r -eq 1 ]; then
        wait_pid "$BENCH_PID" 600
        ok $? "round 1: shmq-bench failover got a send acknowledged by $O" || diag "$T/bench.err"
        perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); my $x = $j->{extra};
            printf "%d %d %d\n", $x->{open_refusals} > 0 ? 1 : 0,
                $x->{first_ack_ms} >= $x->{first_attach_ms} ? 1 : 0, $x->{first_ack_ms}' \
            <"$T/bench.json" >"$T/bench.fig" 2>/dev/null
        read -r refused ordered bench_ms <"$T/bench.fig"
        [ "${refused:-0}" = 1 ] && [ "${ordered:-0}" = 1 ]
        ok $? "round 1: ... after $O refused it as a slave (first acknowledged send at ${bench_ms:-?} ms)" ||
            diag "$T/bench.json"
    fi
    echo "round $r: kill -> elected $((t_elect - t0)) ms (seen), promoted $((t_prom - t0)) ms (seen), first acknowledged send $((${t_ack:-0} - t0)) ms" >>"$T/figures"
    echo "# round $r: failover $M -> $O: kill -> first acknowledged send on the new master $((${t_ack:-0} - t0)) ms (elected seen at $((t_elect - t0)) ms)"
    # ---- the killed store comes back: a slave of the new master --------------------------
    # It starts as the master it was and, told by the group, starts again as a slave:
    # "running" is seen twice, so wait for both at once.
    start_store $M
    wait_jpath "$MD" "\$j->{state} eq 'running' && \$j->{replication}{role} eq 'SLAVE' &&
        \$j->{replication}{master}{address} eq '$(store_addr $O)' ? 1 : 0" 1 600
    ok $? "round $r: $M, started again, runs as a slave of $O" || diag "$(store_log $M)"
    [ $M = A ] && note_workers
    M=$O
    r=$((r + 1))
done

# ---- the check: every acknowledged message on the final master exactly once ------------
LI=$(wait_leader)
wait_eq 600 "1,2" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
ok $? "in the end the sync-state set holds both replicas again"
stop_loads
O=$(other $M)
MD=$(store_dir $M)
OD=$(store_dir $O)
caught_up "$MD" "$OD"
ok $? "the final slave ($O) caught up with the final master ($M, $WM)" || diag "$(store_log $O)"
acked_keys "$T"/load.* >"$T/acked.keys"
NACK=$(wc -l <"$T/acked.keys")
[ "$NACK" -gt 0 ] && [ "$(sort -u "$T/acked.keys" | wc -l)" -eq "$NACK" ]
ok $? "the producers were answered SEND_OK for $NACK messages, each key once"
# The final master's records of TopicL, read from its CommitLog once both stores stopped.
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
stop_broker
for d in A B; do
    (STORE=$(store_dir $d) && stored_load_records TopicL) >"$T/records.$d"
done
awk '{ print $1 }' "$T/records.$M" | sort >"$T/stored.keys"
# Per producer (one per master, each killed under its load but the last): what its
# master acknowledged and the final master lacks.  Every master is a SYNC_MASTER: the
# configured one, and each store the group promoted (roleOverride), acknowledging by the
# whole sync-state set.
final=$((ROUNDS * 10 + 10))
[ "$ROUNDS" -gt 0 ] || final=1
echo "$final - $M final" >>"$T/killed"
lost_all=0
while read -r load round store role; do
    acked_keys "$T/load.$load" | comm -23 - "$T/stored.keys" >"$T/lost.$load"
    lost=$(wc -l <"$T/lost.$load")
    echo "# producer $load (round $round, master $store, $role): $(acks "$T/load.$load") acknowledged, $lost missing on the final master"
    lost_all=$((lost_all + lost))
    [ "$lost" -gt 0 ] && head -n 3 "$T/lost.$load" | sed 's/^/#   missing /'
done <"$T/killed"
is "$lost_all" 0 "no acknowledged message is missing on the final master ($M), whichever master acknowledged it"
uniq -d "$T/stored.keys" >"$T/dup.keys"
awk '{ print $2, $3 }' "$T/records.$M" | sort | uniq -d >"$T/dup.seqs"
[ ! -s "$T/dup.keys" ] && [ ! -s "$T/dup.seqs" ]
ok $? "no message is on the final master twice (by key, and by producer and sequence)" ||
    head -n 5 "$T/dup.keys" "$T/dup.seqs" | sed 's/^/#   /' >&2
is "$(awk '$4 != 1' "$T/records.$M" | wc -l)" 0 "every TopicL body on the final master is whole"
cmp -s "$T/records.$M" "$T/records.$O"
ok $? "the final slave ($O) holds the same TopicL records, in the same order"
sed 's/^/# /' "$T/figures"

stop_ctrls checked
done_testing
