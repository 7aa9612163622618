#!/bin/sh
# An asynchronous send that the writer has answered, but that still waits
# for the flush (SYNC_FLUSH) or for a slave (SYNC_MASTER), when every
# process of the store is killed: its callback must not say SEND_OK, since
# nothing flushed or replicated the message.  It ends with RocketMQ's
# timeout status instead (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT: stored,
# not known durable or replicated), and a second send still in the ring
# when the store went away ends with an error.  The waits are 60 s long;
# the answers come when the producer sees the store gone (every bound
# here is 30 s), also when nothing of the producer's is in flight any
# more and only the answered send waits, and for a synchronous send that
# waits for the flush (shmq_send returns then, with the same status).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init async-wait-store-gone
. "$SRC/tests/helpers/replication.sh"

TOPIC=TopicGone

# gone NAME STATUS WHAT [alone|sync]: the store at $STORE holds one answered send that waits
# for WHAT (its worker already stopped); unless alone or sync, the writer is stopped before a
# second send (alone: nothing of the producer's is in flight, only the answered send waits;
# sync: the same with shmq_send); every process of the store is killed.  The first answer has
# status STATUS, the second is an error.
gone() {
    local name=$1 status=$2 what=$3 alone=$4 s pids wr second="--async" answers=2
    "$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 2 >"$T/$name.topic" 2>&1
    pids="$SHMQD_PID $(all_worker_pids)"
    wr=$(worker_pid writer)
    if [ -n "$alone" ]; then
        answers=1
    else
        second="--async --second-go-file $T/$name.go"
    fi
    [ "$alone" = sync ] && second=""
    "$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --timeout 120000 $second \
        >"$T/$name.out" 2>"$T/$name.err" &
    s=$!
    bg_add $s
    # A synchronous send prints nothing before its answer: the store's count says it took it.
    wait_line "$T/$name.out" "^$([ "$alone" = sync ] && echo attached || echo published)\$" &&
        wait_in 1
    ok $? "$name: the first send is stored and answered by the writer" || diag "$T/$name.err"
    sleep 0.5
    ! grep -q '^ok\|^err' "$T/$name.out"
    ok $? "$name: it waits for $what" || diag "$T/$name.out"

    if [ -z "$alone" ]; then
        kill -STOP "$wr"
        touch "$T/$name.go"
        wait_line "$T/$name.out" '^published 2$'
        ok $? "$name: a second send is in the ring, the writer stopped" || diag "$T/$name.err"
    fi
    for p in $pids; do
        kill -9 "$p" 2>/dev/null
    done
    SHMQD_PID=""
    wait_pid $s 300
    [ "$(grep -c '^ok\|^err' "$T/$name.out")" = $answers ]
    ok $? "$name: every callback ($answers) ran within 30 s of the kill" || diag "$T/$name.out"
    sed -n '/^ok\|^err/p' "$T/$name.out" | head -n 1 | grep -q "^ok .* $status\$"
    ok $? "$name: the first ends with status $status, not SEND_OK" || diag "$T/$name.out"
    if [ -z "$alone" ]; then
        sed -n '/^ok\|^err/p' "$T/$name.out" | tail -n 1 | grep -q '^err '
        ok $? "$name: the second ends with an error" || diag "$T/$name.out"
    fi
}

# flush_gone NAME [alone|sync]: gone() on a SYNC_FLUSH store of its own (syncFlushTimeout 60 s)
# whose flusher is stopped.
flush_gone() {
    STORE="$T/store-$1"
    start_broker --set flushDiskType=SYNC_FLUSH --set syncFlushTimeout=60000
    ok $? "$1: shmqd starts with SYNC_FLUSH, syncFlushTimeout 60 s" || diag "$T/shmqd.log"
    kill -STOP "$(worker_pid flusher)"
    ok $? "$1: the flusher is stopped"
    gone "$1" 1 "the flush" "$2"
}

# ---- SYNC_FLUSH: the flusher stopped ------------------------------------------------------
flush_gone flush

# ---- SYNC_FLUSH, nothing in flight: only the answered send waits ----------------------------
# The producer has no request in the ring, so nothing of its own looks for an answer: its wait
# for the flush must still notice the store gone, and end then, not at syncFlushTimeout (60 s).
flush_gone alone alone

# ---- SYNC_FLUSH, a synchronous send: shmq_send waits for the flush ----------------------------
flush_gone sync sync

# ---- SYNC_MASTER: the slave's receiver stopped ---------------------------------------------
STORE="$MASTER"
start_broker $MCONF --set brokerRole=SYNC_MASTER --set slaveTimeout=60000
ok $? "slave: a SYNC_MASTER starts, slaveTimeout 60 s" || diag "$T/shmqd.log"
start_slave "$SLAVE" "$HA_PORT" slave
SLAVE_PID=$LAST_PID
ok $? "slave: its slave starts" || diag "$T/slave.log"
wait_jpath "$MASTER" '$j->{replication}{slaves}[0]{in_sync}' 1
ok $? "slave: the slave is in sync" || diag "$T/slave.log"
RCV=$(jpath "$SLAVE" 'join(" ", map { $_->{pid} } grep { $_->{name} eq "ha-receiver" } @{$j->{workers}})')
[ -n "$RCV" ] && kill -STOP $RCV
ok $? "slave: the slave's receiver is stopped"
gone slave 2 "the slave"
kill -CONT $RCV 2>/dev/null

done_testing
