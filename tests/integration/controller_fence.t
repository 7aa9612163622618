#!/bin/sh
# Lease fencing of a master in controller mode (docs/controller.md "Fencing"):
# three controllers (controllerBrokerTimeoutMillis=2000), a master store M and a
# slave store S, both ASYNC (so that the lease, not replication, is what stops
# M's acknowledgements).  M reaches each controller through a TCP proxy of its
# own and S follows M through one more; the four proxies share one control
# directory, so that one `block` file partitions M from the group and from S.
# M's first controller address is the proxy of the leader: a follower's
# NOT_LEADER names the leader's own address, which no proxy would cut, so
# the test checks that M's agent talks to the leader through its proxy.
#   - M started before any controller refuses sends with SHMQ_E_NOT_MASTER (the
#     group has not named it master: no lease yet), and takes them once the
#     group elected it (status shows the lease, the refusals counted); S, a
#     slave, gets no lease from answers that name M master;
#   - under a continuous load on M, M is partitioned: its sends become refused
#     with the not-the-master error, and no send is acknowledged after the
#     first refusal; the last acknowledged send comes BEFORE the group's
#     leader even proposes electing S (order only: the lease lapses half the
#     broker timeout before the election can come); timer messages due
#     meanwhile are refused to M's scheduler, which retries and drops none;
#     S promotes itself and takes sends;
#   - the partition healed, M turns into a slave of S, and a producer on M is
#     refused with a text naming S's address.
# Waits are bounded (tens of seconds); nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-fence
. "$SRC/tests/helpers/replication.sh"
TIMEOUT_MS=2000
. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
PROXY_PIDS=""
trap 'for p in $PROXY_PIDS; do stop_pid "$p" 20; done; ctrl_cleanup; slave_cleanup; broker_cleanup' EXIT

# M's four proxies (three controllers, its HA port), steered by files in $PX.  The
# controllers' three are started once the group has a leader (their ports are chosen now):
# X0 to the leader, X1 and X2 to the followers.
PX="$T/px"
mkdir -p "$PX"
proxy() { # proxy LISTEN_PORT TARGET_PORT
    perl "$SRC/tests/helpers/ha_proxy.pl" "$1" "$2" "$PX" >>"$T/proxy.log" 2>&1 &
    PROXY_PIDS="$PROXY_PIDS $!"
    bg_add $!
}
X0=$(free_port)
X1=$X0
while [ "$X1" = "$X0" ]; do X1=$(free_port); done
X2=$X0
while [ "$X2" = "$X0" ] || [ "$X2" = "$X1" ]; do X2=$(free_port); done
XH=$(free_port)
proxy "$XH" "$HA_PORT"

S_PORT=$(free_port 2)
M_ADDR="127.0.0.1:$HA_PORT"
S_ADDR="127.0.0.1:$S_PORT"
MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0"
M_CTRL="--set controllerAddr=127.0.0.1:$X0;127.0.0.1:$X1;127.0.0.1:$X2"
S_CTRL="--set controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"

# log_ms FILE PATTERN: the time (ms since the epoch) of the first log line of FILE matching
# PATTERN ("YYYY-MM-DD HH:MM:SS.mmm" local time at the start of the line); empty when none.
log_ms() {
    grep -m 1 -e "$2" "$1" 2>/dev/null | perl -MTime::Local=timelocal -ne '
        /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+)/ or exit 0;
        printf "%d\n", timelocal($6, $5, $4, $3, $2 - 1, $1) * 1000 + $7'
}

# ---- M before the group: no lease, no send ----------------------------------------------
# M runs its indexer: when M comes back as a slave, the cut of its divergent tail takes the
# index entries past the cut with it (store_truncate.c), before it replicates the new
# master's records to those offsets.
start_broker $MCONF --set brokerRole=ASYNC_MASTER $MODE $M_CTRL
ok $? "the master store starts in controller mode before any controller runs" || {
    diag "$T/shmqd.log"
    echo "Bail out! the master store does not start"
    exit 1
}
"$CTL" send --store "$MASTER" $SMALL TopicA --size 100 >"$T/a0.out" 2>&1
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "a send before the group named the store master fails"
grep -q "not master of broker set b1: the controller group has not named this store master yet" \
    "$T/a0.out"
ok $? "... refused as not the master (SHMQ_E_NOT_MASTER), saying no lease was granted yet" ||
    diag "$T/a0.out"
grep -q "not serving as master" "$T/a0.out"
ok $? "... with the error's own text" || diag "$T/a0.out"
is "$(jpath "$MASTER" '$j->{refused_not_master}')" 1 "status counts it (refused_not_master)"
is "$(jpath "$MASTER" '$j->{rejects}')" 0 "... and not as bad input"
is "$(jpath "$MASTER" 'defined $j->{controller}{lease_left_ms} ? "granted" : "never"')" never \
    "status: the lease was never granted"
"$CTL" status --store "$MASTER" $SMALL >"$T/mstatus0.txt" 2>&1
is "$?:$(grep -c "^health: .*the controller group has not named the store master" \
    "$T/mstatus0.txt")" 1:1 "... and the store not healthy: sends are refused" ||
    diag "$T/mstatus0.txt"

t0=$(now_ms)
start_ctrls
i=0
LI=none
while [ "$LI" = none ] && [ $i -lt 300 ]; do
    sleep 0.1
    LI=$(leader_index)
    i=$((i + 1))
done
ok "$([ "$LI" != none ] && echo 0 || echo 1)" "one controller leads (n$LI)"
proxy "$X0" "$(caddr "$LI" | cut -d: -f2)"
proxy "$X1" "$(caddr $(((LI + 1) % 3)) | cut -d: -f2)"
proxy "$X2" "$(caddr $(((LI + 2) % 3)) | cut -d: -f2)"
wait_jpath "$MASTER" '$j->{controller}{master_id}' 1 600
ok $? "the group elects M (brokerId 1) through M's proxies" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '($j->{controller}{lease_left_ms} // 0) > 0 ? 1 : 0' 1
ok $? "M's status shows a lease" || diag "$T/shmqd.log"
echo "# M holds a lease $(($(now_ms) - t0)) ms after the controllers started"
is "$(jpath "$MASTER" '$j->{controller}{broker_timeout_ms}')" 2000 \
    "the group's answers told M its broker timeout (2000 ms)"
"$CTL" send --store "$MASTER" $SMALL TopicA --count 20 --size 100 >"$T/a1.out" 2>&1
sent_ok a1 20
ok $? "once elected, M takes sends" || diag "$T/a1.out"
grep -q "the controller group names this store (brokerId 1) master of b1: it may take writes" \
    "$T/shmqd.log"
ok $? "M's log says when its lease started" || diag "$T/shmqd.log"
"$CTL" status --store "$MASTER" $SMALL >"$T/mstatus.txt" 2>&1
grep -q "^  lease as master: [0-9]* ms left" "$T/mstatus.txt" &&
    grep -q "^refused: .* 1 not master" "$T/mstatus.txt" &&
    grep -q "^health: *ok" "$T/mstatus.txt"
ok $? "shmqctl status shows the lease, the refusal, and the store healthy" ||
    diag "$T/mstatus.txt"
is "$(jpath "$MASTER" '$j->{controller}{leader}')" "127.0.0.1:$X0" \
    "M talks to the leader through its proxy" || diag "$T/shmqd.log"

# ---- S follows M through the fourth proxy -------------------------------------------------
start_ctrl_slave "$SLAVE" "$XH" "$S_PORT" "$S_CTRL" slave
SLAVE_PID=$LAST_PID
wait_jpath "$SLAVE" '$j->{controller}{broker_id}' 2 300
ok $? "S registers (brokerId 2)" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "S follows M through the proxy" || diag "$T/slave.log"
wait_eq 300 "1,2" set_j "$LI" 'join ",", sort @{$s->{syncStateSet}}'
ok $? "M reported S in the sync-state set" || diag "$T/shmqd.log"
is "$(jpath "$SLAVE" '$j->{refused_not_master}')" 0 "S (a slave) counts no refusal"
wait_jpath "$SLAVE" '$j->{controller}{heartbeats} > 3 ? 1 : 0' 1
ok $? "S's heartbeats are answered" || diag "$T/slave.log"
is "$(jpath "$SLAVE" 'defined $j->{controller}{lease_left_ms} ? "lease" : "no lease"')" \
    "no lease" "S's answered heartbeats name M master: they grant S no lease"

# ---- M partitioned under a load -----------------------------------------------------------
"$HELPERS/load_producer" --store "$MASTER" --topic TopicL --id 1 --count 1000000 --size 200 \
    --async 4 --rate 200 --timeout 3000 --stamp >"$T/load.out" 2>"$T/load.err" &
LP=$!
bg_add $LP
i=0
while [ "$(count_lines ' ACK ' "$T/load.out")" -lt 200 ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
ok "$([ "$(count_lines ' ACK ' "$T/load.out")" -ge 200 ] && echo 0 || echo 1)" \
    "the load runs on M (200 acknowledged)" || diag "$T/load.err"
is "$(jpath "$MASTER" '$j->{controller}{leader}')" "127.0.0.1:$X0" \
    "M still talks to the leader through its proxy" || diag "$T/shmqd.log"
is "$(leader_index)" "$LI" "the same controller leads (n$LI)"
# Timer messages due while M is cut off: its scheduler's deliveries are refused too, and kept.
"$CTL" send --store "$MASTER" $SMALL TopicT --count 5 --size 100 --deliver-after 2500 \
    >"$T/timer.out" 2>&1
sent_ok timer 5
ok $? "M takes 5 timer messages due 2.5 s later" || diag "$T/timer.out"
t_block=$(now_ms)
: >"$PX/block"
wait_log "ERR .*not master of broker set b1: the store's lease from the controller group lapsed" \
    "$T/load.out" 300
ok $? "partitioned, M refuses the load's sends: its lease lapsed (SHMQ_E_NOT_MASTER)" ||
    diag "$T/load.out"
wait_eq 300 "2 2" set_j "$LI" '"$s->{masterId} $s->{masterEpoch}"'
ok $? "the group elects S (brokerId 2) master, master epoch 2" || diag "$T/ctrl$LI.log"
echo "# S elected $(($(now_ms) - t_block)) ms after the partition"
wait_jpath "$SLAVE" '$j->{role}{epoch}' 2 300
ok $? "S promotes itself (epoch 2)" || diag "$T/slave.log"
wait_jpath "$SLAVE" '($j->{controller}{lease_left_ms} // 0) > 0 ? 1 : 0' 1
ok $? "S holds a lease as master" || diag "$T/slave.log"
"$CTL" send --store "$SLAVE" $SMALL TopicS --count 50 --size 100 >"$T/s1.out" 2>&1
sent_ok s1 50
ok $? "S takes sends" || diag "$T/s1.out"
kill -TERM $LP 2>/dev/null
wait_pid $LP 300

# Order: the last acknowledgement, the first refusal after the cut, the election.  Lines come
# in the order the answers were taken; a refusal before the cut (a lease lapsed for a moment on
# a loaded machine, granted again) is not the partition's.
ACKS_AFTER=$(perl -ne 'BEGIN { $t = shift } my ($ms, $what) = split " ";
    $seen = 1 if !$seen && $ms >= $t && /ERR .*not master of broker set b1/;
    $after++ if $seen && $what eq "ACK"; END { print $seen ? $after + 0 : "no refusal", "\n" }' \
    "$t_block" "$T/load.out")
is "$ACKS_AFTER" 0 "no send was acknowledged after M's first refusal once partitioned"
LAST_ACK=$(grep " ACK " "$T/load.out" | tail -1 | cut -d' ' -f1)
T_ELECT=""
for i in 0 1 2; do
    t=$(log_ms "$T/ctrl$i.log" "b1: master brokerId 1 sent no heartbeat for")
    [ -n "$t" ] && { [ -z "$T_ELECT" ] || [ "$t" -lt "$T_ELECT" ]; } && T_ELECT=$t
done
[ -n "$LAST_ACK" ] && [ -n "$T_ELECT" ] && [ "$LAST_ACK" -lt "$T_ELECT" ]
ok $? "M's last acknowledged send ($LAST_ACK) comes before the leader proposes electing S ($T_ELECT)" ||
    diag "$T/ctrl$LI.log"
echo "# last ack $((LAST_ACK - t_block)) ms after the partition, the election proposed" \
    "$((T_ELECT - LAST_ACK)) ms after the last ack"
[ "$(jpath "$MASTER" '$j->{refused_not_master}')" -gt 1 ]
ok $? "M's status counts the refusals ($(jpath "$MASTER" '$j->{refused_not_master}'))"
[ "$(jpath "$MASTER" '$j->{controller}{lease_left_ms}')" -lt 0 ]
ok $? "M's status shows its lease lapsed"
is "$(jpath "$MASTER" '$j->{healthy} . " " . join(";", @{$j->{problems}})')" \
    "0 the store's lease as master from the controller group lapsed: sends are refused" \
    "... and M not healthy for it"
grep -q "the lease as master of b1 lapsed .* writes are refused" "$T/shmqd.log"
ok $? "M's log says its lease lapsed" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '$j->{scheduler}{retries} > 0 ? 1 : 0' 1
ok $? "M's scheduler tried the due timer messages and was refused: it retries" ||
    diag "$T/shmqd.log"
is "$(jpath "$MASTER" '"$j->{scheduler}{dropped} $j->{scheduler}{timer_delivered}"')" "0 0" \
    "... dropping none and counting none delivered"

# ---- the partition heals: M turns into a slave of S ---------------------------------------
t0=$(now_ms)
rm -f "$PX/block"
wait_jpath "$MASTER" '$j->{replication}{role}' SLAVE 600
ok $? "healed, M turns into a slave" || diag "$T/shmqd.log"
echo "# M a slave $(($(now_ms) - t0)) ms after the partition healed"
grep -q "the controller names brokerId 2 (127.0.0.1:$S_PORT) master of b1, not this store" \
    "$T/shmqd.log"
ok $? "M's log says the group named S" || diag "$T/shmqd.log"
note_workers
"$CTL" send --store "$MASTER" $SMALL TopicA --size 100 >"$T/a2.out" 2>&1
ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "a send to M, now a slave, fails"
grep -q "slave.*127.0.0.1:$S_PORT" "$T/a2.out"
ok $? "... with a text naming S's address" || diag "$T/a2.out"
caught_up "$SLAVE" "$MASTER"
ok $? "M catches up with S ($WM)" || diag "$T/shmqd.log"

# ---- stop ----------------------------------------------------------------------------
stop_pid "$SLAVE_PID" 600
SLAVE_PID=""
stop_broker
is "$STOP_RC" 0 "M stops cleanly" || diag "$T/shmqd.log"
stop_ctrls checked
done_testing
