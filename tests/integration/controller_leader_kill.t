#!/bin/sh
# The controller group's leader killed (-9) while a master store in controller
# mode takes a steady load: the two members left elect another leader; the
# store's ctrl-agent finds it (NOT_LEADER, or the next address) and its lease
# as master is renewed before it lapses (controllerBrokerTimeoutMillis=6000:
# a lease of 3 s, against a leader change of about a second), so no send is
# refused and the store never stops taking writes; the killed member, started
# again, rejoins with the group's state.  docs/controller.md "Fencing" says why
# controllerElectionTimeoutMillis must stay well below half the broker timeout.
# Waits are bounded (tens of seconds); nothing asserts a tight time.  TAP output.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init controller-leader-kill
. "$SRC/tests/helpers/replication.sh"
. "$SRC/tests/helpers/controller.sh"
need_ctrl_agent
trap 'ctrl_cleanup; broker_cleanup' EXIT
TIMEOUT_MS=6000

start_ctrls
LI=$(wait_leader)
ok "$([ "$LI" != none ] && echo 0 || echo 1)" "the group elects a leader (n$LI)"

MODE="--set enableControllerMode=true --set brokerName=b1 --set brokerId=0"
start_broker $MCONF --set brokerRole=ASYNC_MASTER $MODE \
    --set "controllerAddr=$(caddr 0);$(caddr 1);$(caddr 2)"
ok $? "the master store starts in controller mode" || diag "$T/shmqd.log"
wait_jpath "$MASTER" '($j->{controller}{lease_left_ms} // 0) > 0 ? 1 : 0' 1 300
ok $? "the group names it master: it holds a lease" || diag "$T/shmqd.log"

"$HELPERS/load_producer" --store "$MASTER" --topic TopicL --id 1 --count 1000000 --rate 200 \
    --stamp >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
bg_add $LOAD_PID
wait_count() { # wait_count FILE PATTERN N: until N lines match (at most 30 s)
    local i=0
    while [ "$(grep -c "$2" "$1")" -lt "$3" ] && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(grep -c "$2" "$1")" -ge "$3" ]
}
wait_count "$T/load.out" ' ACK ' 200
ok $? "a load of 200 sends a second is acknowledged" || diag "$T/load.err"

# ---- kill -9 of the leader --------------------------------------------------------------
HB=$(jpath "$MASTER" '$j->{controller}{heartbeats}')
kill -9 "$(cpid "$LI")"
wait "$(cpid "$LI")" 2>/dev/null
eval "CPID$LI=''"
NL=none
for i in $(seq 1 200); do
    NL=$(leader_index)
    [ "$NL" != none ] && [ "$NL" != "$LI" ] && break
    sleep 0.1
done
ok "$([ "$NL" != none ] && [ "$NL" != "$LI" ] && echo 0 || echo 1)" \
    "the two members left elect another leader (n$NL)"
wait_jpath "$MASTER" "\$j->{controller}{leader} eq '$(caddr "$NL")' &&
    \$j->{controller}{heartbeats} > $HB + 2 ? 1 : 0" 1 300
ok $? "the store's agent heartbeats to the new leader" || diag "$T/shmqd.log"
ACKS=$(grep -c ' ACK ' "$T/load.out")
wait_count "$T/load.out" ' ACK ' $((ACKS + 200))
ok $? "the store goes on acknowledging sends" || diag "$T/load.err"
stop_pid $LOAD_PID 100
is "$(grep -c ' ERR ' "$T/load.out")" 0 "no send was refused through the leader change" ||
    grep ' ERR ' "$T/load.out" | head -n 3 | sed 's/^/# /'
is "$(status_json | jfield refused_not_master)" 0 "status: no entry refused as not the master"
grep -q "lease as master of b1 lapsed" "$T/shmqd.log"
is $? 1 "the lease never lapsed (no such line in the log)"
is "$(set_j "$NL" '$s->{masterId}')" 1 "the new leader names the store master, as the old did"

# ---- the killed member comes back ---------------------------------------------------------
start_ctrl "$LI"
wait_eq 300 1 set_j "$LI" '$s->{masterId}'
ok $? "n$LI, started again, rejoins with the group's state" || diag "$T/ctrl$LI.log"

stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
stop_ctrls checked
done_testing
