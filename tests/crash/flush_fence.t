#!/bin/sh
# A failed flush is never retried and trusted, not even across a restart
# (PITFALLS 1, 19).  A fault shim (tests/fault/fail_sync.c) makes one msync
# of one worker fail with EIO and lets the later ones "succeed", as Linux
# does after a failed writeback; the bytes stay readable in the page cache.
#   1. CommitLog flush (flusher, SYNC_FLUSH): the store fences and stops, the
#      fence point is recorded durably, abort stays; the next start cuts the
#      log at that point although the page cache shows records past it, and
#      every acknowledged message is there exactly once.
#   1b. A staged CommitLog write (writer, SYNC_FLUSH: pwrite of records): the
#      store fences in the same way, and the next start cuts the log there.
#   2. ConsumeQueue flush (dispatcher): the store fences; the next start drops
#      the units past the recorded point and rebuilds them: a consumer gets
#      every acknowledged message exactly once.
#   3. Index flush (indexer): the store fences instead of running on with a
#      frozen index time; an orderly stop is not reported clean (abort stays).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init flush-fence

SHIM="$BUILD/tests/fault/libfail_sync.so"
TOPIC=TopicFence
SYNC="--set flushDiskType=SYNC_FLUSH"

# start_faulty PROG PATH AFTER [ARGS...]: shmqd with the shim armed for PROG.
start_faulty() {
    local prog=$1 path=$2 after=$3
    shift 3
    rm -f "$T/fault.mark"
    LD_PRELOAD="$SHIM" SHMQ_FAULT_PROG="$prog" SHMQ_FAULT_PATH="$path" \
        SHMQ_FAULT_AFTER="$after" SHMQ_FAULT_MARK="$T/fault.mark" \
        "$SHMQD" --store "$STORE" $SMALL "$@" >>"$T/shmqd.log" 2>&1 &
    SHMQD_PID=$!
    wait_state running 300 && wait_workers 300
}

# wait_gone PID [TENTHS]: the master exited by itself; its status in GONE_RC.
wait_gone() {
    local lim=${2:-600} i=0
    while alive "$1" && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    GONE_RC=255
    if alive "$1"; then
        # Still running: stop it here, or the next start would leave it behind.
        stop_pid "$1" 100
        SHMQD_PID=""
        return 1
    fi
    wait "$1"
    GONE_RC=$?
    SHMQD_PID="" # gone: nothing left for the cleanup to stop
    return 0
}

# records_from D: records of the stopped store's CommitLog at or past offset D.
records_from() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
        perl -ne 'print "$1\n" if /"phys_offset":(\d+)/' | awk -v d="$1" '$1 >= d' |
        wc -l | tr -d ' '
}

# fence_durable PART: the durable point recorded in fence-PART (empty if none).
fence_durable() {
    awk '$1 == "durable" { print $2 }' "$STORE/fence-$1" 2>/dev/null
}

producer() {
    local id=$1
    shift
    "$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id "$id" --count 1000000 \
        --rate 400 --size 100 --size-max 2000 --timeout 4000 "$@" >"$T/p$id" 2>"$T/p$id.err" &
    bg_add $!
    LAST_PRODUCER=$!
}

# producers_pair A B: producer A one message at a time and producer B with 8 in flight,
# their pids in P1 and P2.
producers_pair() {
    producer "$1"
    P1=$LAST_PRODUCER
    producer "$2" --async 8
    P2=$LAST_PRODUCER
}

# fence_recorded: D is the point fence-commitlog records (checked); producers P1 and P2 stop.
fence_recorded() {
    D=$(fence_durable commitlog)
    [ -n "$D" ]
    ok $? "the fence point is recorded in fence-commitlog ($D)"
    kill -KILL $P1 $P2 2>/dev/null
    wait_pid $P1 100
    wait_pid $P2 100
}

# restart_expect NAME TEXT FENCE [ARGS...]: the store starts again (with ARGS), the log of
# that start says TEXT, and the fence file FENCE is gone (recovery is durable); after a
# clean stop verify passes.
restart_expect() {
    local name=$1 text=$2 fence=$3
    shift 3
    echo "---- restart $name ----" >>"$T/shmqd.log"
    start_broker "$@"
    ok $? "shmqd starts again with no manual step" || diag "$T/shmqd.log"
    sed -n "/---- restart $name ----/,\$p" "$T/shmqd.log" | grep -q "$text"
    ok $? "the start's log says: $text" || diag "$T/shmqd.log"
    [ ! -e "$STORE/$fence" ]
    ok $? "$fence is lifted once recovery is durable"
    stop_broker
    ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
    "$CTL" verify --store "$STORE" $SMALL >"$T/verify$name" 2>&1
    ok $? "verify passes" || diag "$T/verify$name"
}

# restart_cut NAME D OUTPUTS...: after a CommitLog fence at D, the store starts again
# (SYNC_FLUSH) and recovery cuts the log there (restart_expect); no record is at or past D,
# and every message the producers' OUTPUTS acknowledged is stored once, its body intact.
restart_cut() {
    local name=$1 d=$2
    shift 2
    restart_expect "$name" "cut at its last good flush $d" fence-commitlog $SYNC
    stored_load_records $TOPIC >"$T/stored$name"
    is "$(records_from "$d")" "0" "no record at or past the fence point"
    acked_keys "$@" >"$T/acked$name"
    awk '{ print $1 }' "$T/stored$name" | sort >"$T/keys$name"
    comm -23 "$T/acked$name" "$T/keys$name" >"$T/missing$name"
    is "$(wc -l <"$T/missing$name" | tr -d ' ')" "0" \
        "every acknowledged message ($(wc -l <"$T/acked$name" | tr -d ' ')) is present" ||
        diag "$T/missing$name"
    is "$(uniq -d "$T/keys$name" | wc -l | tr -d ' ')" "0" "no message is stored twice"
    is "$(awk '$4 != 1' "$T/stored$name" | wc -l | tr -d ' ')" "0" "every stored body is intact"
}

# ---- 1. CommitLog ---------------------------------------------------------------------------
start_faulty shmq-flusher /commitlog/ 40 $SYNC
ok $? "shmqd (SYNC_FLUSH) starts with a flusher whose 41st CommitLog msync fails" ||
    diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"
producers_pair 1 2
wait_gone "$SHMQD_PID" 600
ok $? "the master stops the store by itself after the failed flush" || diag "$T/shmqd.log"
[ -e "$T/fault.mark" ]
ok $? "the fault fired in the flusher"
[ "$GONE_RC" -ne 0 ]
ok $? "shmqd exits non-zero (exit $GONE_RC)"
grep -q "the store is fenced" "$T/shmqd.log"
ok $? "the flusher logged the fence" || diag "$T/shmqd.log"
[ -e "$STORE/abort" ]
ok $? "abort stays"
fence_recorded
# The page cache (here: the disk too) shows records past the fence point.
past=$(records_from "$D")
[ "$past" -gt 0 ]
ok $? "records past the fence point are readable before the restart ($past)" || diag "$T/dump.err"

restart_cut 1 "$D" "$T/p1" "$T/p2"

# ---- 1b. A staged CommitLog write ---------------------------------------------------------
# Under SYNC_FLUSH the writer puts its records into the CommitLog with pwrite
# (commitlog.h, "Staged appends").  A write that fails leaves the page cache
# holding an unknown part of the records past `wrote`: the writer fences the
# store there, as the flusher does at `flushed` for a failed flush (the
# flusher may still flush, and answer for, every record below `wrote`).
SHMQ_FAULT_WRITE=1
export SHMQ_FAULT_WRITE
start_faulty shmq-writer /commitlog/ 60 $SYNC
ok $? "shmqd (SYNC_FLUSH) starts with a writer whose 61st write of records fails" ||
    diag "$T/shmqd.log"
unset SHMQ_FAULT_WRITE
producers_pair 11 12
wait_gone "$SHMQD_PID" 600
ok $? "the master stops the store by itself after the failed write" || diag "$T/shmqd.log"
[ -e "$T/fault.mark" ] && [ "$GONE_RC" -ne 0 ] && [ -e "$STORE/abort" ]
ok $? "the fault fired in the writer, shmqd exits $GONE_RC, abort stays"
grep -q "writing .* bytes of records at .* failed.*the store is fenced" "$T/shmqd.log"
ok $? "the writer logged the failed write and the fence" || diag "$T/shmqd.log"
fence_recorded
grep -q "SHMQ_E_FENCED\|fenced" "$T/p11.err" "$T/p12.err" "$T/p11" "$T/p12" 2>/dev/null
ok $? "the producers were told the store is fenced" || diag "$T/p11.err"
restart_cut 1b "$D" "$T/p1" "$T/p2" "$T/p11" "$T/p12"

# ---- 2. ConsumeQueue ------------------------------------------------------------------------
start_faulty shmq-dispatcher /consumequeue/ 12
ok $? "shmqd starts with a dispatcher whose 13th consume queue msync fails" ||
    diag "$T/shmqd.log"
producer 3
P3=$LAST_PRODUCER
wait_gone "$SHMQD_PID" 900
ok $? "the master stops the store by itself after the failed flush" || diag "$T/shmqd.log"
[ -e "$T/fault.mark" ] && [ "$GONE_RC" -ne 0 ] && [ -e "$STORE/abort" ]
ok $? "the fault fired in the dispatcher, shmqd exits $GONE_RC, abort stays"
Q=$(fence_durable consumequeue)
[ -n "$Q" ]
ok $? "the fence point is recorded in fence-consumequeue ($Q)"
kill -KILL $P3 2>/dev/null
wait_pid $P3 100
echo "---- restart 2 ----" >>"$T/shmqd.log"
start_broker
ok $? "shmqd starts again" || diag "$T/shmqd.log"
sed -n '/---- restart 2 ----/,$p' "$T/shmqd.log" | grep -q "units past $Q were dropped and rebuilt"
ok $? "recovery rebuilt the consume queues past the fence point" || diag "$T/shmqd.log"
"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group G2 --idle-ms 3000 \
    --max-ms 120000 >"$T/c2" 2>"$T/c2.err"
ok $? "a consumer reads the topic with every check passing" || diag "$T/c2.err"
awk '$1 == "MSG" { print $4 }' "$T/c2" | sort >"$T/consumed2"
acked_keys "$T/p1" "$T/p2" "$T/p3" >"$T/acked2"
is "$(comm -23 "$T/acked2" "$T/consumed2" | wc -l | tr -d ' ')" "0" \
    "every acknowledged message ($(wc -l <"$T/acked2" | tr -d ' ')) is consumed"
is "$(uniq -d "$T/consumed2" | wc -l | tr -d ' ')" "0" "no message is consumed twice"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

# ---- 2b. A consume queue's new directory ------------------------------------------------------
# The first sync of a new topic's consume-queue path is the fsync of its directory,
# made when the dispatcher creates the queue: a failure there fences as a failed msync.
DIRTOPIC=TopicFenceDir
start_faulty shmq-dispatcher /consumequeue/$DIRTOPIC 0
ok $? "shmqd starts with a dispatcher whose first fsync under consumequeue/$DIRTOPIC fails" ||
    diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $DIRTOPIC --queues 2 >"$T/topic5.out" 2>&1
ok $? "topic $DIRTOPIC created" || diag "$T/topic5.out"
"$HELPERS/load_producer" --store "$STORE" --topic $DIRTOPIC --id 5 --count 1000000 \
    --rate 400 --size 100 --timeout 4000 >"$T/p5" 2>"$T/p5.err" &
bg_add $!
P5=$!
wait_gone "$SHMQD_PID" 900
ok $? "the master stops the store by itself after the failed directory fsync" ||
    diag "$T/shmqd.log"
[ -d "$(cat "$T/fault.mark" 2>/dev/null)" ]
ok $? "the fault fired on a directory ($(cat "$T/fault.mark" 2>/dev/null))"
[ "$GONE_RC" -ne 0 ] && [ -e "$STORE/abort" ] && [ -n "$(fence_durable consumequeue)" ]
ok $? "shmqd exits $GONE_RC, abort stays, the fence point is recorded" || diag "$T/shmqd.log"
kill -KILL $P5 2>/dev/null
wait_pid $P5 100
echo "---- restart 2b ----" >>"$T/shmqd.log"
start_broker
ok $? "shmqd starts again" || diag "$T/shmqd.log"
"$HELPERS/load_consumer" --store "$STORE" --topic $DIRTOPIC --group G5 --idle-ms 3000 \
    --max-ms 120000 >"$T/c5" 2>"$T/c5.err"
ok $? "a consumer reads the new topic with every check passing" || diag "$T/c5.err"
awk '$1 == "MSG" { print $4 }' "$T/c5" | sort >"$T/consumed5"
acked_keys "$T/p5" >"$T/acked5"
is "$(comm -23 "$T/acked5" "$T/consumed5" | wc -l | tr -d ' ')" "0" \
    "every acknowledged message ($(wc -l <"$T/acked5" | tr -d ' ')) is consumed"
is "$(uniq -d "$T/consumed5" | wc -l | tr -d ' ')" "0" "no message is consumed twice"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

# ---- 3. Index -------------------------------------------------------------------------------
start_faulty shmq-indexer /index/ 2
ok $? "shmqd starts with an indexer whose third index msync fails" || diag "$T/shmqd.log"
producer 4
P4=$LAST_PRODUCER
wait_gone "$SHMQD_PID" 900
ok $? "the master stops the store by itself after the failed index flush" || diag "$T/shmqd.log"
[ -e "$T/fault.mark" ] && [ "$GONE_RC" -ne 0 ] && [ -e "$STORE/abort" ]
ok $? "the fault fired in the indexer, shmqd exits $GONE_RC, abort stays (not a clean stop)"
kill -KILL $P4 2>/dev/null
wait_pid $P4 100
# The next start runs abnormal recovery: index files past the checkpoint are rebuilt.
restart_expect 3 "recovery (abnormal" fence-index

done_testing
