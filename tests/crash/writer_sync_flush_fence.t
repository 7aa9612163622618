#!/bin/sh
# SYNC_FLUSH sends that wait for the flush (the writer has answered, flushed
# does not cover the record yet: the flusher is stopped with SIGSTOP) and
# syncFlushTimeout 60 s:
#   - the send timeout bounds a send: with a 2 s send timeout, shmq_send
#     returns FLUSH_DISK_TIMEOUT (stored, not known durable) long before
#     syncFlushTimeout;
#   - once the store is fenced (as by a failed flush), a synchronous send
#     and an asynchronous send's callback that wait for the flush end with
#     SHMQ_E_FENCED at once, not FLUSH_DISK_TIMEOUT after syncFlushTimeout:
#     with the fence's wake-up of flushed's waiters, and (a second store)
#     without it, noticed by the waits themselves.
# Time bounds are generous (30 s, half of syncFlushTimeout); nothing may be
# answered before the fence.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init writer-sync-flush-fence

TOPIC=TopicSF
FENCED=-10014 # SHMQ_E_FENCED

# phase NAME [--no-wake]: a store whose flusher is stopped; sends wait for the flush; fence.
phase() {
    local name=$1 wake=$2 fl s0 s1 s2 stored=0
    STORE="$T/store-$name"
    start_broker --set flushDiskType=SYNC_FLUSH --set syncFlushTimeout=60000
    ok $? "$name: shmqd starts with SYNC_FLUSH, syncFlushTimeout 60 s" || diag "$T/shmqd.log"
    "$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 2 >"$T/topic.out" 2>&1
    ok $? "$name: topic created" || diag "$T/topic.out"
    fl=$(worker_pid flusher)
    kill -STOP "$fl"
    ok $? "$name: the flusher is stopped"

    if [ -z "$wake" ]; then
        "$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --timeout 2000 \
            >"$T/$name.s0" 2>"$T/$name.s0.err" &
        s0=$!
        bg_add $s0
        wait_pid $s0 300
        grep -q '^ok .* 1$' "$T/$name.s0"
        ok $? "$name: a send with a 2 s send timeout returns FLUSH_DISK_TIMEOUT within 30 s" ||
            diag "$T/$name.s0"
        stored=1
    fi

    "$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --timeout 120000 \
        >"$T/$name.s1" 2>"$T/$name.s1.err" &
    s1=$!
    "$HELPERS/send_wait" --store "$STORE" --topic $TOPIC --timeout 120000 --async \
        >"$T/$name.s2" 2>"$T/$name.s2.err" &
    s2=$!
    bg_add "$s1 $s2"
    wait_line "$T/$name.s1" '^attached' && wait_line "$T/$name.s2" '^published' &&
        wait_in $((stored + 2))
    ok $? "$name: a synchronous and an asynchronous send are stored" || diag "$T/$name.s2.err"
    sleep 1
    ! grep -q '^ok\|^err' "$T/$name.s1" "$T/$name.s2" &&
        [ "$(position wrote)" -gt "$(position flushed)" ]
    ok $? "$name: both wait for the flush (no answer before the fence)" || {
        diag "$T/$name.s1"
        diag "$T/$name.s2"
    }

    "$HELPERS/fence_store" --store "$STORE" $wake >"$T/fence" 2>&1
    ok $? "$name: the store is fenced" || diag "$T/fence"
    wait_pid $s1 300
    grep -q "^err $FENCED " "$T/$name.s1"
    ok $? "$name: the synchronous send ends with SHMQ_E_FENCED within 30 s" || diag "$T/$name.s1"
    wait_pid $s2 300
    grep -q "^err $FENCED " "$T/$name.s2"
    ok $? "$name: the asynchronous send's callback gets SHMQ_E_FENCED within 30 s" ||
        diag "$T/$name.s2"

    kill -CONT "$fl"
    wait_pid "$SHMQD_PID" 600
    SHMQD_PID=""
    PHASES=$((PHASES + 1))
    [ "$(count_lines 'state: running -> failed' "$T/shmqd.log")" -eq $PHASES ]
    ok $? "$name: the store stopped as failed" || diag "$T/shmqd.log"
}

PHASES=0
phase woken
phase unwoken --no-wake

done_testing
