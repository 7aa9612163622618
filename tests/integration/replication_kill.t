#!/bin/sh
# SYNC_MASTER under kill -9 of whole stores: producers send (synchronously
# and asynchronously) while every process of the master is killed; every
# message answered SEND_OK is on the slave, which stays up.  The master
# starts again and the slave follows it.  Then the slave's whole store is
# killed under load: no send is answered SEND_OK while no slave holds it,
# and once the slave runs again it catches up.  In the end both logs are
# the same, byte for byte.  Rounds: REPL_KILL_ROUNDS (default 1; make torture: 10).  TAP
# output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init replication-kill
. "$SRC/tests/helpers/replication.sh"

ROUNDS=${REPL_KILL_ROUNDS:-1}
SYNC="--set brokerRole=SYNC_MASTER --set slaveTimeout=2000"

# load NAME: two producers of TopicK in the background (one synchronous, one with 16 in
# flight); their pids in LOADS.
load() {
    "$HELPERS/load_producer" --store "$MASTER" --topic TopicK --id 1 --count 1000000 \
        --size 300 --timeout 3000 >"$T/$1.sync" 2>"$T/$1.sync.err" &
    LOADS=$!
    "$HELPERS/load_producer" --store "$MASTER" --topic TopicK --id 2 --count 1000000 \
        --size 300 --async 16 --timeout 3000 >"$T/$1.async" 2>"$T/$1.async.err" &
    LOADS="$LOADS $!"
    bg_add "$LOADS"
}
# kill_all PIDS: SIGKILL each, at once.
kill_all() {
    local p
    for p in $1; do
        kill -9 "$p" 2>/dev/null
    done
}
# acked NAME: the UNIQ_KEYs the producers of load NAME were answered SEND_OK for.
acked() {
    cat "$T/$1.sync" "$T/$1.async" | awk '$1 == "ACK" {print $2}' | sort -u
}
# slave_keys: every UNIQ_KEY of TopicK on the slave.
slave_keys() {
    "$CTL" consume --store "$SLAVE" $SMALL TopicK --group "GK$n" --json --count 100000000 \
        --timeout 3000 2>/dev/null | jfield uniq_key | sort -u
}
# wait_in_sync: the master sees a slave in sync (at most 30 s).
wait_in_sync() {
    wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
}
# stop_loads: the producers of the last load stop (SIGTERM) and are waited for.
stop_loads() {
    local p
    for p in $LOADS; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $LOADS; do
        wait "$p"
    done
}

start_broker $MCONF $SYNC
ok $? "a SYNC_MASTER starts" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "its slave starts" || diag "$T/slave.log"
wait_in_sync
ok $? "the slave is in sync"

r=1
while [ $r -le "$ROUNDS" ]; do
    # ---- the master's store killed ---------------------------------------------------
    load m$r
    sleep 1.5
    kill_all "$SHMQD_PID $(all_worker_pids)"
    sleep 0.5
    stop_loads
    SHMQD_PID=""
    acked m$r >"$T/m$r.acked"
    slave_keys >"$T/m$r.slave"
    na=$(wc -l <"$T/m$r.acked")
    missing=$(comm -23 "$T/m$r.acked" "$T/m$r.slave" | wc -l)
    [ "$na" -gt 0 ] && [ "$missing" -eq 0 ]
    ok $? "round $r: master killed: all $na messages answered SEND_OK are on the slave" ||
        { echo "# $missing missing" >&2; diag "$T/slave.log"; }
    start_broker $MCONF $SYNC
    ok $? "round $r: the master starts again after the kill" || diag "$T/shmqd.log"
    wait_in_sync
    ok $? "round $r: the slave follows it again" || diag "$T/slave.log"

    # ---- the slave's store killed ------------------------------------------------------
    load s$r
    sleep 1
    SPIDS="$SLAVE_PID $(jpath "$SLAVE" 'join(" ", grep { $_ > 0 } map { $_->{pid} } @{$j->{workers}})')"
    kill_all "$SPIDS"
    wait "$SLAVE_PID" 2>/dev/null
    # Down for longer than slaveTimeout: sends waiting for it time out.
    sleep 3
    start_slave "$SLAVE" "$HA_PORT" slave
    SLAVE_PID=$LAST_PID
    ok $? "round $r: the slave starts again after the kill" || diag "$T/slave.log"
    stop_loads
    caught_up
    ok $? "round $r: and catches up" || diag "$T/slave.log"
    acked s$r >"$T/s$r.acked"
    slave_keys >"$T/s$r.slave"
    missing=$(comm -23 "$T/s$r.acked" "$T/s$r.slave" | wc -l)
    is "$missing" 0 "round $r: every message answered SEND_OK is on the slave"
    grep -q 'SLAVE_NOT_AVAILABLE\|FLUSH_SLAVE_TIMEOUT\|status not SEND_OK' \
        "$T/s$r.sync" "$T/s$r.async"
    ok $? "round $r: while the slave was down sends were not answered SEND_OK" ||
        { tail -n 3 "$T/s$r.sync" "$T/s$r.async" >&2; diag "$T/shmqd.log"; }
    r=$((r + 1))
done

caught_up && same_log
ok $? "the two logs are the same, byte for byte" || diag "$T/slave.log"
stop_pid "$SLAVE_PID" 100
SLAVE_PID=""
stop_broker
ok $? "the master stops cleanly" || diag "$T/shmqd.log"
done_testing
