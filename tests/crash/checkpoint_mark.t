#!/bin/sh
# The checkpoint names the dispatcher's mark (ctl.h shmq_ctl_cq_mark_t), never
# a walk of the CommitLog: under load, with the dispatcher, the flusher and
# both killed -9 at random moments, every checkpoint read names a position at
# or below flushed and cq_flushed as published after it, and the checkpoint
# keeps moving; `shmqctl verify` (live, after a kill of everything, and after a
# clean stop) finds its confirmPhyOffset a record boundary and its
# physicMsgTimestamp and logicsMsgTimestamp the store time of the record
# before it.  First ASYNC_FLUSH with a slow CommitLog flush (the dispatcher's
# marks run ahead of flushed), then the same store under SYNC_FLUSH with a
# slow queue (cq_flushed stops at its first unflushed unit, between two of
# the dispatcher's batch ends).  After the clean stop the checkpoint
# confirms the whole log.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init checkpoint-mark

FAST=TopicCkFast
SLOW=TopicCkSlow
# ASYNC_FLUSH: the CommitLog flushed every 3 s, the ConsumeQueues every second whatever they
# hold: the dispatcher's marks run ahead of flushed.  SYNC_FLUSH: the ConsumeQueues by the
# least-pages rule: the slow queue holds cq_flushed between two of the dispatcher's batches.
ASYNC="--set flushDiskType=ASYNC_FLUSH --set flushIntervalCommitLog=3000 --set flushConsumeQueueLeastPages=0"
SYNC="--set flushDiskType=SYNC_FLUSH"

# confirmPhyOffset (big-endian long at 32) of the checkpoint, read until two reads agree
# (the flusher rewrites it in place).
checkpoint_confirm() {
    perl -e 'sub rd { open(my $f, "<", $ARGV[0]) or return -1; binmode $f; seek($f, 32, 0);
            read($f, my $b, 8) == 8 or return -1; my ($hi, $lo) = unpack("NN", $b);
            return $hi * 4294967296 + $lo }
        my $a = rd(); for (1 .. 10) { my $b = rd(); last if $a == $b; $a = $b } print "$a\n"' \
        "$STORE/checkpoint"
}

# flushed and cq_flushed, from one status call.
flushed_pair() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{positions}{flushed}, " ", $j->{cq_flushed}, "\n"'
}

# sample N: N times, a checkpoint read and then the positions: the checkpoint is at or
# below both (they only grow).  Counts the bad samples in BAD, distinct confirms in MOVES.
sample() {
    local i=0 c f q last=-1
    while [ $i -lt "$1" ]; do
        c=$(checkpoint_confirm)
        set -- "$1" $(flushed_pair)
        f=$2
        q=$3
        if [ -n "$c" ] && [ -n "$f" ] && [ -n "$q" ]; then
            if [ "$c" -gt "$f" ] || [ "$c" -gt "$q" ]; then
                BAD=$((BAD + 1))
                echo "checkpoint $c, then flushed $f, cq_flushed $q" >>"$T/bad_samples"
            fi
            [ "$c" != "$last" ] && MOVES=$((MOVES + 1))
            last=$c
        fi
        sleep 0.2
        i=$((i + 1))
    done
}

# verify_checkpoint NAME [ARGS]: shmqctl verify; no word against the checkpoint's offset or
# time (a live or crashed store may show other notes, e.g. a tail being written).
verify_checkpoint() {
    local name=$1
    shift
    "$CTL" verify --store "$STORE" $SMALL "$@" >"$T/$name" 2>&1
    VRC=$?
    # It read the checkpoint (its summary names it), and has no word against it.
    if ! grep -q "and checkpoint;" "$T/$name"; then
        { echo "verify did not finish (exit $VRC):"; cat "$T/$name"; } >"$T/$name.ck"
        return 1
    fi
    ! grep -E "not the store time|confirmPhyOffset|physicMsgTimestamp|logicsMsgTimestamp" \
        "$T/$name" >"$T/$name.ck"
}

producers() {
    "$HELPERS/load_producer" --store "$STORE" --topic $FAST --id "$1" --count 1000000 \
        --rate 400 --size 100 --size-max 1500 --async 8 --timeout 8000 >"$T/p$1" 2>"$T/p$1.err" &
    P1=$!
    "$HELPERS/load_producer" --store "$STORE" --topic $SLOW --id "$(($1 + 1))" --count 1000000 \
        --rate 60 --size 100 --timeout 8000 >"$T/p$(($1 + 1))" 2>"$T/p$(($1 + 1)).err" &
    P2=$!
    bg_add "$P1 $P2"
}

stop_producers() {
    kill -TERM $P1 $P2
    wait_pid $P1 300
    wait_pid $P2 300
}

# kill_and_wait ROLE...: kill -9 the roles at once, wait until each runs again.
kill_and_wait() {
    local r p rp pids="" rc=0
    for r in "$@"; do
        p=$(worker_pid "$r")
        pids="$pids $r:$p"
        kill -KILL "$p"
    done
    for rp in $pids; do
        wait_restarted "${rp%%:*}" "${rp#*:}" 300 || rc=1
    done
    return $rc
}

# phase NAME FLUSH_ARGS ID: load, samples between kills, live verify, clean stop, verify.
phase() {
    local name=$1 args=$2 id=$3 k
    BAD=0
    MOVES=0
    start_broker $args
    ok $? "$name: shmqd starts" || diag "$T/shmqd.log"
    producers "$id"
    sample 8
    for k in dispatcher flusher dispatcher "dispatcher flusher" dispatcher; do
        kill_and_wait $k
        ok $? "$name: kill -9 of $k: restarted" || diag "$T/shmqd.log"
        sample 6
    done
    is "$BAD" "0" "$name: every checkpoint read is at or below flushed and cq_flushed" ||
        diag "$T/bad_samples"
    [ "$MOVES" -ge 5 ]
    ok $? "$name: the checkpoint kept moving under load ($MOVES values seen)"
    verify_checkpoint "$name.live"
    ok $? "$name: verify of the running store: the checkpoint is a record boundary with its time" ||
        diag "$T/$name.live.ck"
    stop_producers
    wrote=$(position wrote)
    stop_broker
    ok $? "$name: shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
    is "$(checkpoint_confirm)" "$wrote" "$name: the checkpoint confirms the whole log ($wrote)"
    verify_checkpoint "$name.stopped"
    ok $? "$name: verify after the stop: the checkpoint names its record's time" ||
        diag "$T/$name.stopped.ck"
    is "$VRC" "0" "$name: verify passes" || diag "$T/$name.stopped"
    grep "checkpoint turns" "$T/shmqd.log" | tail -n 1 | sed "s/^/# $name: /"
}

start_broker $ASYNC
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $FAST --queues 4 >"$T/topic.out" 2>&1 &&
    "$CTL" topic --store "$STORE" $SMALL create $SLOW --queues 1 >>"$T/topic.out" 2>&1
ok $? "topics created" || diag "$T/topic.out"
stop_broker
ok $? "shmqd stops" || diag "$T/shmqd.log"

phase async "$ASYNC" 1

# ---- everything killed at once, mid-load: the checkpoint on disk is still truthful -------
start_broker $ASYNC
ok $? "shmqd starts again" || diag "$T/shmqd.log"
producers 3
sleep 3
kill_store_all
ok $? "master and workers are dead"
stop_producers
verify_checkpoint crashed
ok $? "verify of the killed store: the checkpoint is a record boundary with its time" ||
    diag "$T/crashed.ck"

phase sync "$SYNC" 5
sed -n '/recovery (abnormal/p' "$T/shmqd.log" | grep -q .
ok $? "the start after the kill ran abnormal recovery" || diag "$T/shmqd.log"

done_testing
