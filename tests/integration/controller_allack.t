#!/bin/sh
# allAckInSyncStateSet: a SYNC_MASTER in controller mode acknowledges a send only
# when every member of the sync-state set holds it.  Three controllers, a master
# and two slaves (brokerId 0: the group assigns 1, 2, 3):
#   - both slaves join the sync-state set, and the master's slave rows show each
#     slave's brokerId (given in the HA hello);
#   - a hello with a bad brokerId, or a second one with another id, closes that
#     connection and nothing else;
#   - one slave's whole store stopped (SIGSTOP) while in the set: no send whose
#     record it lacks is acknowledged before the master acknowledges by a set
#     without it; sends time out meanwhile (FLUSH_SLAVE_TIMEOUT), the group drops
#     it, and sends are acknowledged again;
#   - SIGCONT: it catches up and rejoins the set;
#   - the master's whole store killed (-9) under a SYNC load: the slave the group
#     elects holds every acknowledged message.
# Waits are bounded (tens of seconds); order is asserted, not times.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-allack
. "$SRC/tests/helpers/replication.sh"

. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
trap 'ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

S1_PORT=$(free_port 2)
S2_PORT=$(free_port 2)
MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0"
CADDRS="--set controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"
# sync_set I: the sync-state set controller I holds for b1, sorted, comma-separated.
sync_set() { set_j "$1" 'join ",", sort @{$s->{syncStateSet}}'; }
# row_id DIR ID: "1" when DIR's status has a connected slave row of brokerId ID.
row_id() { jpath "$1" "scalar(grep { \$_->{broker_id} == $2 } @{\$j->{replication}{slaves}})"; }
# log_ms LINE: the wall time in ms of a shmqd log line (its local-time stamp).
log_ms() {
    echo "$1" | perl -MPOSIX=mktime -ne '/^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+)/ or exit 1;
        printf "%d\n", mktime($6, $5, $4, $3, $2 - 1, $1 - 1900) * 1000 + $7'
}

# A member silent for 2.5 s is dropped: at least 1.5 s after its last heartbeat (they come
# every second), longer than the master's slaveTimeout (1 s), so that sends waiting for a
# stopped member time out before the group drops it.
TIMEOUT_MS=2500
start_ctrls

# ---- a master and two slaves; both slaves join the set --------------------------------------
start_broker $MCONF --set brokerRole=SYNC_MASTER --set slaveTimeout=1000 $MODE $CADDRS
ok $? "the master store starts in controller mode" || {
    diag "$T/shmqd.log"
    echo "Bail out! the master store does not start"
    exit 1
}
LI=none
i=0
while [ "$LI" = none ] && [ $i -lt 300 ]; do
    LI=$(leader_index)
    i=$((i + 1))
    [ "$LI" = none ] && sleep 0.1
done
wait_eq 300 1 set_j "$LI" '$s->{masterId}'
ok $? "the controller elects brokerId 1 (the master store) master of b1" || diag "$T/shmqd.log"
start_ctrl_slave "$SLAVE" "$HA_PORT" "$S1_PORT" "$CADDRS" slave
SLAVE_PID=$LAST_PID
wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 300
ok $? "the first slave registers as brokerId 2" || diag "$T/slave.log"
start_ctrl_slave "$SLAVE2" "$HA_PORT" "$S2_PORT" "$CADDRS" slave2
SLAVE2_PID=$LAST_PID
wait_jpath "$SLAVE2" '$j->{controller}{broker_id}' 3 300
ok $? "the second slave registers as brokerId 3" || diag "$T/slave2.log"
wait_eq 300 "1,2,3" sync_set "$LI"
ok $? "both slaves join the sync-state set: [1,2,3]" || diag "$T/shmqd.log"
wait_eq 300 1 row_id "$MASTER" 2
ok $? "the master's slave rows show brokerId 2" || diag "$T/shmqd.log"
wait_eq 300 1 row_id "$MASTER" 3
ok $? "... and brokerId 3"
wait_jpath "$MASTER" 'join ",", sort @{$j->{controller}{acked_by}{sync_state_set}}' "1,2,3"
ok $? "the master acknowledges by the set [1,2,3] (status)"
"$CTL" status --store "$MASTER" $SMALL >"$T/mstatus.txt" 2>&1
grep -q "slave .*in sync, brokerId 2$" "$T/mstatus.txt" &&
    grep -q "acknowledging by the sync-state set \[" "$T/mstatus.txt"
ok $? "shmqctl status shows the slaves' brokerIds and the set" || diag "$T/mstatus.txt"
"$CTL" send --store "$MASTER" $SMALL TopicA --count 200 --size 300 >"$T/a.out" 2>&1
sent_ok a 200
ok $? "with every member following, SYNC sends are acknowledged" || diag "$T/a.out"

# ---- a hello is untrusted input -------------------------------------------------------------
# hello ID...: a connection to the master's HA port (the test's TLS link) that gives each ID.
hello() {
    perl -e 'print "\xffSHMQID1", pack("q>", $_) for @ARGV; sleep 2' "$@" |
        timeout 20 openssl s_client -connect "127.0.0.1:$HA_PORT" -tls1_3 \
            -psk "$(tr -d ' \t\r\n' <"$HA_SECRET" | sha256sum | cut -d' ' -f1)" \
            -psk_identity shmq-ha/1 -quiet >/dev/null 2>&1
}
hello 0
wait_log "closed: hello with brokerId 0: give 1 to" "$T/shmqd.log"
ok $? "a hello with brokerId 0 closes the connection, naming the value" || diag "$T/shmqd.log"
hello 5 6
wait_log "closed: gave brokerId 5, then 6" "$T/shmqd.log"
ok $? "a second hello with another brokerId closes the connection" || diag "$T/shmqd.log"
is "$(row_id "$MASTER" 2)$(row_id "$MASTER" 3)" 11 "the slaves' rows are untouched"

# ---- one slave stopped: sends wait until the group drops it ---------------------------------
S2PIDS="$SLAVE2_PID $(STORE=$SLAVE2 all_worker_pids)"
# Each line stamped with the wall time it arrived at (never before the send was acknowledged).
sh -c 'echo $$ >"$1"; exec "$2/load_producer" --store "$3" --topic TopicS --id 1 \
    --count 1000000 --size 200 --async 4 --timeout 60000' sh "$T/sload.pid" "$HELPERS" "$MASTER" \
    2>"$T/sload.err" |
    perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf "%d %s", time * 1000, $_' \
        >"$T/sload.out" &
LP=$!
bg_add $LP
i=0
while [ "$(grep -c ' ACK ' "$T/sload.out")" -lt 500 ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
t_stop=$(now_ms)
kill -STOP $S2PIDS
LOGLINE=$(wc -l <"$T/shmqd.log")
echo "# slave brokerId 3 stopped ($S2PIDS)"
sleep 1 # its last report reaches the master's row
STOP_ACKED=$(jpath "$MASTER" '(grep { $_->{broker_id} == 3 } @{$j->{replication}{slaves}})[0]{acked}')
log_has "$T/shmqd.log" "$LOGLINE" "acknowledging by the sync-state set \[1,2\]"
ok $? "the master's agent acknowledges by [1,2] once the group dropped the stopped slave" ||
    diag "$T/shmqd.log"
wait_eq 200 "1,2" sync_set "$LI"
ok $? "the controller's set no longer holds brokerId 3" || diag "$T/ctrl$LI.log"
SHRINK=$(log_ms "$(tail -n +"$LOGLINE" "$T/shmqd.log" |
    grep -m1 "acknowledging by the sync-state set \[1,2\]")")
echo "# the master acknowledged by [1,2] $((SHRINK - t_stop)) ms after the stop"
sleep 1
acks_after=$(grep -c ' ACK ' "$T/sload.out")
sleep 1
acks_later=$(grep -c ' ACK ' "$T/sload.out")
[ "$acks_later" -gt "$acks_after" ]
ok $? "sends are acknowledged again without the stopped slave ($acks_after, then $acks_later)"
# Records at or after what the stopped slave had acked: none acknowledged before the shrink.
early=$(awk -v a="$STOP_ACKED" -v t="$SHRINK" '$2 == "ACK" && $8 >= a && $1 < t' "$T/sload.out" |
    wc -l)
late=$(awk -v a="$STOP_ACKED" -v t="$SHRINK" '$2 == "ACK" && $8 >= a && $1 >= t' "$T/sload.out" |
    wc -l)
[ -n "$STOP_ACKED" ] && [ -n "$SHRINK" ] && [ "$early" -eq 0 ] && [ "$late" -gt 0 ]
ok $? "no send the stopped slave lacks was acknowledged before the set dropped it ($early before, $late after; slave at $STOP_ACKED)"
grep -q " ERR 1 [0-9]* [0-9-]* status not SEND_OK" "$T/sload.out"
ok $? "sends that waited for the stopped slave ended without SEND_OK (FLUSH_SLAVE_TIMEOUT)" ||
    diag "$T/sload.out"

# ---- SIGCONT: the slave catches up and rejoins ------------------------------------------------
t_cont=$(now_ms)
kill -CONT $S2PIDS
wait_eq 300 "1,2,3" sync_set "$LI"
ok $? "the slave, continued, catches up and rejoins the set [1,2,3]" || diag "$T/shmqd.log"
echo "# back in the controller's set $(($(now_ms) - t_cont)) ms after SIGCONT"
wait_jpath "$MASTER" 'join ",", sort @{$j->{controller}{acked_by}{sync_state_set}}' "1,2,3"
ok $? "the master acknowledges by [1,2,3] again"
kill -TERM "$(cat "$T/sload.pid")" 2>/dev/null
wait_pid $LP 300

# ---- the master's store killed under a SYNC load: the elected slave has every ack -----------
"$HELPERS/load_producer" --store "$MASTER" --topic TopicF --id 2 --count 200000 --size 200 \
    --async 16 --timeout 5000 >"$T/fload.out" 2>"$T/fload.err" &
LP=$!
bg_add $LP
i=0
while [ "$(grep -c '^ACK' "$T/fload.out")" -lt 1000 ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill_master_store
kill -TERM $LP 2>/dev/null # its answers so far are in; it stops after the current send
wait_pid $LP 600
ACKED=$(grep -c '^ACK' "$T/fload.out")
[ "$ACKED" -ge 1000 ]
ok $? "the master acknowledged $ACKED messages before its store was killed (-9)" ||
    diag "$T/fload.err"
wait_eq 600 2 set_j "$LI" '$s->{masterEpoch}'
ok $? "the controller elects a slave master (master epoch 2)" || diag "$T/ctrl$LI.log"
NEW=$(set_j "$LI" '$s->{masterId}')
case $NEW in
2) NEWDIR=$SLAVE ;;
*) NEWDIR=$SLAVE2 ;;
esac
echo "# brokerId $NEW elected"
wait_jpath "$NEWDIR" '$j->{role}{epoch}' 2 600
ok $? "the elected slave (brokerId $NEW) promotes itself" || diag "$T/slave.log"
acked_keys "$T/fload.out" >"$T/acked.keys"
"$CTL" consume --store "$NEWDIR" $SMALL TopicF --group GF --json --timeout 3000 \
    >"$T/GF.json" 2>"$T/GF.err"
jfield uniq_key <"$T/GF.json" | sort >"$T/GF.keys"
comm -23 "$T/acked.keys" "$T/GF.keys" >"$T/lost.keys"
is "$(wc -l <"$T/lost.keys")" 0 "every acknowledged message is on the elected slave"

# ---- stop ----------------------------------------------------------------------------
stop_pid "$SLAVE_PID" 600
stop_pid "$SLAVE2_PID" 600
SLAVE_PID=""
SLAVE2_PID=""
stop_ctrls
done_testing
