#!/bin/sh
# Power loss: the store runs on a loop-mounted ext4 image while producers
# send and log every acknowledgement on the host's own disk (fdatasync, see
# ack_producer.c).  A cut freezes every process of the store and every
# producer (SIGSTOP), copies the image file (what the disk held at that
# instant, without the page cache of the mounted filesystem), and the copy
# is mounted in place of the original and the store started on it with no
# manual step.  After every cut:
#   - the store starts, stops cleanly, and `shmqctl verify` passes;
#   - no message is stored twice and every body is whole;
#   - the recovered CommitLog reaches the flushed position published at the
#     cut (what the store called flushed was on the disk);
#   - SYNC_FLUSH: every acknowledged message is there;
#   - ASYNC_FLUSH: each producer's messages are a prefix of what it sent (a
#     cut loses a tail, never a message in the middle); the acknowledged
#     messages lost are counted and reported.
# Kinds of cut:
#   - during sends, several per broker run: the store goes on after each
#     copy; the run's last cut kills everything and the next run starts from
#     that copy, so later cuts also check what earlier runs stored;
#   - right after a clean stop: nothing acknowledged may be lost, also under
#     ASYNC_FLUSH;
#   - after a crash-restart (kill -9 of every store process, restart): one
#     cut as soon as the store runs, the producers still held, and one once
#     they were acknowledged again.  What recovery accepted must be durable,
#     so every message acknowledged before the crash is there, also under
#     ASYNC_FLUSH (whose run then flushes only every 10 minutes, so that the
#     crash leaves it all in the page cache).
#
# SHMQ_POWER_CUTS (default 30) cuts during sends under SYNC_FLUSH and
# SHMQ_POWER_ASYNC_CUTS (default 4) under ASYNC_FLUSH, SHMQ_POWER_PER_RUN
# (default 8) per broker run; `make torture` runs a long campaign.  Needs
# root and loop devices: elsewhere it prints SKIP with the reason.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init power-loss
. "$SRC/tests/helpers/powercut.sh"
pc_init 256

SYNC_CUTS=${SHMQ_POWER_CUTS:-30}
ASYNC_CUTS=${SHMQ_POWER_ASYNC_CUTS:-4}
PER_RUN=${SHMQ_POWER_PER_RUN:-8}
MAX_FAILED=${SHMQ_POWER_MAX_FAILED:-5} # then the campaign stops: a broken store is slow to check
RUNS_PER_IMAGE=5 # then a fresh image: bounds the disk used and the time of each check
TOPIC=TopicPower
NPROD=4                         # producers per run: odd ones synchronous, even ones 8 in flight
RATE=${SHMQ_POWER_RATE:-100}    # messages per second per producer
LOGS="$T/logs"
mkdir -p "$LOGS"
[ -x "$HELPERS/ack_producer" ] || {
    echo "Bail out! $HELPERS/ack_producer not built"
    exit 1
}

RUN=0          # producer ids of run r: r*10+1 .. r*10+NPROD
CUT=0          # every cut, all kinds
CHAIN_IDS=""   # "id:flags" of every producer whose messages are on the current image
RUN_IDS=""     # the producers of the current run
RUN_PIDS=""
IMG_RUNS=0     # runs on the current image
MODE=""
FLAGS=""
TOTALS="SYNC_FLUSH ASYNC_FLUSH"
FAILED=0       # failed cuts, all kinds

# Go on with the campaign? (no after MAX_FAILED failed cuts)
going() {
    [ "$FAILED" -lt "$MAX_FAILED" ] && return 0
    [ -n "$GAVE_UP" ] || echo "# $FAILED cuts failed: the remaining cuts are skipped (SHMQ_POWER_MAX_FAILED)"
    GAVE_UP=1
    return 1
}

# ---- figures -----------------------------------------------------------------------

# add MODE NAME VALUE: add to a total (e.g. SYNC_FLUSH_lost).
add() {
    local v
    eval "v=\${${1}_$2:-0}"
    eval "${1}_$2=\$((v + ${3:-0}))"
}
get() {
    eval "echo \${${1}_$2:-0}"
}

# rnd N: a random number in 0 .. N-1.
rnd() {
    echo $(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1))
}

# ---- the image and the broker ------------------------------------------------------

# use_mode SYNC_FLUSH|ASYNC_FLUSH
use_mode() {
    MODE=$1
    FLAGS="--set flushDiskType=$1"
}

# ensure_image: the current image mounted at $FS (a new one when there is
# none or after RUNS_PER_IMAGE runs on it).
ensure_image() {
    pc_umount
    if [ ! -f "$T/disk.img" ] || [ "$IMG_RUNS" -ge "$RUNS_PER_IMAGE" ]; then
        pc_mkimage "$T/disk.img" 256 || return 1
        CHAIN_IDS=""
        IMG_RUNS=0
    fi
    pc_mount "$T/disk.img" || return 1
    mkdir -p -m 700 "$STORE"
    IMG_RUNS=$((IMG_RUNS + 1))
}

# begin_run: mount the image, start the broker, create the topic on a new
# image.  On failure: one failed TAP line, everything stopped and unmounted,
# and the next run takes a fresh image.
begin_run() {
    ensure_image || {
        ok 1 "an image is mounted for run $((RUN + 1))"
        diag "$T/mount.err"
        IMG_RUNS=$RUNS_PER_IMAGE
        return 1
    }
    echo "---- run $((RUN + 1)) ($MODE) ----" >>"$T/shmqd.log"
    if ! pc_start_broker $FLAGS; then
        ok 1 "shmqd ($MODE) starts for run $((RUN + 1))"
        sed -n '/---- run '"$((RUN + 1))"' /,$p' "$T/shmqd.log" | diag /dev/stdin
        abandon_run
        return 1
    fi
    if [ "$IMG_RUNS" -eq 1 ] &&
        ! "$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1; then
        ok 1 "topic created for run $((RUN + 1))"
        diag "$T/topic.out"
        abandon_run
        return 1
    fi
    return 0
}

# abandon_run: kill the producers and the store, unmount; the next run takes a fresh image.
abandon_run() {
    PC_FROZEN="$RUN_PIDS $(pc_store_pids)"
    pc_kill_frozen
    RUN_PIDS=""
    pc_umount
    IMG_RUNS=$RUNS_PER_IMAGE
}

# start_producers FLAGS: NPROD producers of a new run; FLAGS (p or -) says
# whether their messages must stay a prefix of what they sent.
start_producers() {
    local i id w
    RUN=$((RUN + 1))
    RUN_IDS=""
    RUN_PIDS=""
    i=1
    while [ $i -le $NPROD ]; do
        id=$((RUN * 10 + i))
        w=0
        [ $((i % 2)) -eq 0 ] && w=8
        "$HELPERS/ack_producer" --store "$STORE" --topic $TOPIC --id $id --log "$LOGS/$id.log" \
            --rate "$RATE" --size 100 --size-max 1500 --async $w --timeout 15000 --sync-ms 50 \
            2>"$T/p$id.err" &
        RUN_PIDS="$RUN_PIDS $!"
        bg_add $!
        RUN_IDS="$RUN_IDS $id"
        CHAIN_IDS="$CHAIN_IDS $id:$1"
        i=$((i + 1))
    done
}

acks_of() {
    count_lines '^A ' "$LOGS/$1.log"
}

# mark_acks: remember each producer's acknowledgements so far.
mark_acks() {
    local id
    for id in $RUN_IDS; do
        eval "mark_$id=$(acks_of $id)"
    done
}

# wait_acks N [TENTHS]: until every producer of the run has N more
# acknowledgements than at mark_acks (bounded, default 30 s).
wait_acks() {
    local lim=${2:-300} i=0 id m all
    while [ $i -lt "$lim" ]; do
        all=1
        for id in $RUN_IDS; do
            eval "m=\${mark_$id:-0}"
            [ "$(acks_of $id)" -ge $((m + $1)) ] || all=0
        done
        [ $all -eq 1 ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# stop_producers: SIGTERM (they finish what is in flight), wait (bounded).
stop_producers() {
    local p
    kill -TERM $RUN_PIDS 2>/dev/null
    for p in $RUN_PIDS; do
        wait_pid "$p" 300
    done
}

# write_limits FILE [must]: for every producer of the image, its log and how
# much of it counts at this cut (and, with must, how much was logged before
# the crash: the pre_<id> values).
write_limits() {
    local e id fl b m
    : >"$1"
    for e in $CHAIN_IDS; do
        id=${e%%:*}
        fl=${e#*:}
        b=$(stat -c %s "$LOGS/$id.log" 2>/dev/null || echo 0)
        m=0
        case " $RUN_IDS " in *" $id "*)
            fl="${fl}c"
            [ "$2" = must ] && eval "m=\${pre_$id:-0}"
            ;;
        esac
        echo "$LOGS/$id.log $id $b $m $fl" >>"$1"
    done
}

# take_cut NAME: with everything frozen, the flushed and written positions
# (NAME.flushed) and the copy (NAME.img).
take_cut() {
    local wf
    wf=$(status_json | perl -MJSON::PP -e 'local $/; my $j = eval {
        JSON::PP->new->decode(<STDIN>) } or exit 1;
        print "$j->{positions}{flushed} $j->{positions}{wrote}\n"')
    echo "${wf:--1 -1}" >"$T/$1.flushed"
    cp --sparse=always "$IMG" "$T/$1.img"
}

# ---- the check of one cut ---------------------------------------------------------

# check_cut NAME KIND [PROGRESS]: mount the copy NAME.img in place of the
# original, start the store on it, stop it, verify, and compare what it holds
# with the acknowledgement logs (NAME.limits).  The flushed position at the
# cut is in NAME.flushed.  One TAP line.  The copy stays (unmounted).
check_cut() {
    local name=$1 kind=$2 progress=${3:-1} started=0 src=- vrc figs why="" w=-1 f
    local acked lost lost_cur must_lost dup bad stray holes wrote_at_cut
    CUT=$((CUT + 1))
    read -r f wrote_at_cut <"$T/$name.flushed"
    if ! pc_mount "$T/$name.img"; then
        ok 1 "cut $CUT ($MODE, $kind): the copied image mounts"
        diag "$T/mount.err"
        add "$MODE" mountfail 1
        return 1
    fi
    pc_forget_ram
    echo "---- cut $CUT ($MODE, $kind): start on the copy ----" >>"$T/shmqd.log"
    if pc_start_broker $FLAGS; then
        started=1
        w=$PC_WROTE
        stop_broker
        src=$STOP_RC
    else
        add "$MODE" startfail 1
        why="$why; the store did not start"
        PC_FROZEN=$(pc_store_pids)
        pc_kill_frozen
    fi
    timeout 600 "$CTL" verify --store "$STORE" $SMALL >"$T/verify.$CUT" 2>&1
    vrc=$?
    stored_load_records $TOPIC >"$T/stored" 2>"$T/dump.diag"
    figs=$(pc_check "$T/stored" "$T/$name.limits" "$T/details.$CUT")
    acked=$(fig acked "$figs")
    lost=$(fig lost "$figs")
    lost_cur=$(fig lost_cur "$figs")
    must_lost=$(fig must_lost "$figs")
    dup=$(fig dup "$figs")
    bad=$(fig bad "$figs")
    stray=$(fig stray "$figs")
    holes=$(fig holes "$figs")
    [ -n "$acked" ] || why="$why; the check failed"
    [ "$started" -eq 1 ] && [ "$src" != 0 ] && why="$why; the clean stop exited $src"
    [ "$vrc" -eq 0 ] || why="$why; verify failed"
    [ "${dup:-1}" -eq 0 ] || why="$why; $dup stored twice"
    [ "${bad:-1}" -eq 0 ] && [ "${stray:-1}" -eq 0 ] || why="$why; $bad bad and $stray unknown records"
    [ "${holes:-1}" -eq 0 ] || why="$why; $holes messages missing before later ones"
    [ "$started" -eq 0 ] || [ "${w:--1}" -ge "${f:-0}" ] 2>/dev/null ||
        why="$why; the recovered end $w is below the flushed position $f at the cut"
    if [ "$MODE" = SYNC_FLUSH ]; then
        [ "${lost:-1}" -eq 0 ] || why="$why; $lost acknowledged messages lost"
    elif [ "$kind" = "after a clean stop" ]; then # what earlier ASYNC_FLUSH cuts lost stays lost
        [ "${lost_cur:-1}" -eq 0 ] || why="$why; $lost_cur messages acknowledged before the clean stop lost"
    fi
    [ "${must_lost:-1}" -eq 0 ] || why="$why; $must_lost messages acknowledged before the crash lost"
    [ "$progress" -eq 1 ] || why="$why; the producers were not acknowledged before the cut"
    add "$MODE" cuts 1
    [ -z "$why" ] || FAILED=$((FAILED + 1))
    add "$MODE" acked "${acked:-0}"
    add "$MODE" lost "${lost_cur:-0}"
    add "$MODE" dup "${dup:-0}"
    add "$MODE" senderr "$(fig errors "$figs")"
    add "$MODE" notok "$(fig notok "$figs")"
    [ "$vrc" -eq 0 ] || add "$MODE" verifyfail 1
    [ "$MODE" = ASYNC_FLUSH ] && ASYNC_LOST_LIST="$ASYNC_LOST_LIST ${lost_cur:-?}/$acked"
    ok "$([ -z "$why" ] && echo 0 || echo 1)" \
        "cut $CUT ($MODE, $kind): the store starts, verify passes, $acked acknowledged: $lost lost ($lost_cur of this run), $dup duplicated, $holes holes; recovered end $w, flushed at the cut $f (written ${wrote_at_cut:-?})"
    if [ -n "$why" ]; then
        echo "#   ${why#; }"
        diag "$T/details.$CUT"
        [ "$vrc" -eq 0 ] || diag "$T/verify.$CUT"
        sed -n '/---- cut '"$CUT"' /,$p' "$T/shmqd.log" | grep -v ' INFO ' | head -n 20 | diag /dev/stdin
        diag "$T/dump.diag"
    fi
    pc_umount
    # The next run goes on from this copy; a store that cannot start is replaced.
    [ "$started" -eq 1 ]
}

# next_image NAME OK: the copy NAME becomes the image of the next run (or,
# when its store did not start, the next run takes a fresh image).
next_image() {
    rm -f "$T/disk.img"
    if [ "$2" -eq 0 ]; then
        mv "$T/$1.img" "$T/disk.img"
    else
        rm -f "$T/$1.img"
    fi
}

# ---- the kinds of cut -----------------------------------------------------------

# cuts_during_sends N: one broker run, N cuts while the producers send.
cuts_during_sends() {
    local ncuts=$1 k=1 prog rc ms
    begin_run || return 1
    start_producers p
    mark_acks
    wait_acks 20
    while [ $k -le "$ncuts" ]; do
        ms=$((200 + $(rnd 800)))
        sleep "$(echo "$ms" | awk '{ printf "%.3f", $1 / 1000 }')"
        wait_acks 1
        prog=$((1 - $?))
        echo "$prog" >"$T/c$k.progress"
        pc_freeze $RUN_PIDS || ok 1 "every process stops for cut $k of run $RUN"
        write_limits "$T/c$k.limits"
        take_cut "c$k"
        if [ $k -lt "$ncuts" ]; then
            pc_thaw
            mark_acks
        else
            pc_kill_frozen
        fi
        k=$((k + 1))
    done
    pc_umount
    k=1
    while [ $k -le "$ncuts" ]; do
        rc=1
        if going; then
            check_cut "c$k" "during sends, $k of $ncuts in run $RUN" "$(cat "$T/c$k.progress")"
            rc=$?
        fi
        if [ $k -lt "$ncuts" ]; then
            rm -f "$T/c$k.img"
        else
            next_image "c$k" $rc
        fi
        k=$((k + 1))
    done
}

# cut_after_clean_stop: producers stop, the broker stops cleanly, then the cut.
cut_after_clean_stop() {
    begin_run || return 1
    start_producers p
    mark_acks
    wait_acks 30
    stop_producers
    position wrote | awk '{ print $1, $1 }' >"$T/s.flushed" # a clean stop makes all durable
    stop_broker
    ok $? "shmqd ($MODE) stops cleanly before the cut (exit $STOP_RC)" || diag "$T/shmqd.log"
    write_limits "$T/s.limits"
    cp --sparse=always "$IMG" "$T/s.img"
    pc_umount
    check_cut s "after a clean stop"
    next_image s $?
}

# cut_after_crash_restart: kill -9 every store process while the producers
# send (they are held meanwhile), restart, and cut twice: as soon as the
# store runs again, before any producer sends (what recovery accepted from
# the page cache must be on the disk by then: nothing else flushes it), and
# once the producers were acknowledged again.  Under ASYNC_FLUSH the run
# flushes only every 10 minutes, so the crash leaves everything in the page
# cache.
cut_after_crash_restart() {
    local id p i flags=$FLAGS rc
    [ "$MODE" = ASYNC_FLUSH ] &&
        FLAGS="$FLAGS --set flushIntervalCommitLog=600000 --set flushCommitLogThoroughInterval=600000"
    begin_run || {
        FLAGS=$flags
        return 1
    }
    start_producers -
    mark_acks
    wait_acks 30
    kill -STOP $RUN_PIDS
    i=0
    for p in $RUN_PIDS; do
        while ! pc_stopped "$p" && [ $i -lt 300 ]; do
            sleep 0.05
            i=$((i + 1))
        done
    done
    # What the producers logged before the crash must survive the cuts.
    for id in $RUN_IDS; do
        eval "pre_$id=$(stat -c %s "$LOGS/$id.log" 2>/dev/null || echo 0)"
    done
    pc_kill_store
    ok $? "every store process is dead after kill -9 ($MODE)"
    echo "---- crash-restart ($MODE) ----" >>"$T/shmqd.log"
    if ! pc_start_broker $FLAGS; then
        ok 1 "shmqd ($MODE) starts again after kill -9"
        sed -n '/---- crash-restart/,$p' "$T/shmqd.log" | diag /dev/stdin
        add "$MODE" startfail 1
        kill -CONT $RUN_PIDS
        abandon_run
        FLAGS=$flags
        return 1
    fi
    pc_freeze $RUN_PIDS || ok 1 "every process stops for the cut right after the crash-restart"
    write_limits "$T/r1.limits" must
    take_cut r1
    pc_thaw
    mark_acks
    wait_acks 5
    echo $((1 - $?)) >"$T/r2.progress"
    pc_freeze $RUN_PIDS || ok 1 "every process stops for the second cut after the crash-restart"
    write_limits "$T/r2.limits" must
    take_cut r2
    pc_kill_frozen
    pc_umount
    check_cut r1 "right after a crash-restart, producers held"
    rm -f "$T/r1.img"
    check_cut r2 "after a crash-restart, producers acknowledged again" "$(cat "$T/r2.progress")"
    rc=$?
    FLAGS=$flags
    next_image r2 $rc
}

# ---- the campaign -----------------------------------------------------------------

T0=$(date +%s)
# campaign MODE CUTS: CUTS cuts during sends, PER_RUN per broker run, then
# a cut after a clean stop and two after a crash-restart.
campaign() {
    local left=$2 k
    use_mode "$1"
    IMG_RUNS=$RUNS_PER_IMAGE # a fresh image: what another mode stored is checked no more
    while [ "$left" -gt 0 ] && going; do
        k=$PER_RUN
        [ "$k" -gt "$left" ] && k=$left
        cuts_during_sends "$k" || break
        left=$((left - k))
    done
    going && cut_after_clean_stop
    going && cut_after_crash_restart
}

campaign SYNC_FLUSH "$SYNC_CUTS"
campaign ASYNC_FLUSH "$ASYNC_CUTS"

for m in $TOTALS; do
    echo "# $m: $(get $m cuts) cuts, $(get $m acked) acknowledged messages checked, $(get $m lost) lost, $(get $m dup) duplicated, $(get $m startfail) start failures, $(get $m verifyfail) verify failures, $(get $m mountfail) copies that did not mount; sends answered with an error $(get $m senderr), with a status other than SEND_OK $(get $m notok)"
done
echo "# ASYNC_FLUSH acknowledged messages lost per cut (of those acknowledged): ${ASYNC_LOST_LIST# }"
echo "# $(($(date +%s) - T0)) s"
[ "$(get SYNC_FLUSH cuts)" -ge $((SYNC_CUTS + 3)) ]
ok $? "SYNC_FLUSH: $(get SYNC_FLUSH cuts) cuts checked ($SYNC_CUTS during sends, 1 after a clean stop, 2 after a crash-restart)"
is "$(get SYNC_FLUSH lost)" 0 "SYNC_FLUSH: no acknowledged message lost in any cut"
is "$(($(get SYNC_FLUSH dup) + $(get ASYNC_FLUSH dup)))" 0 "no message stored twice after any cut"
is "$(($(get SYNC_FLUSH startfail) + $(get ASYNC_FLUSH startfail)))" 0 "the store started after every cut"
[ "$(get ASYNC_FLUSH cuts)" -ge $((ASYNC_CUTS + 3)) ]
ok $? "ASYNC_FLUSH: $(get ASYNC_FLUSH cuts) cuts checked ($ASYNC_CUTS during sends, 1 after a clean stop, 2 after a crash-restart)"

done_testing
