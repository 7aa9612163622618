#!/bin/sh
# Producing until the disk is full, with producers and a consumer active, on
# a 48 MiB filesystem this test mounts (tmpfs, or a loop-mounted image).
# Forced cleaning is off and nothing is expired, so nothing is deleted:
#   1. the cleaner is stopped (SIGSTOP) so that its watermark cannot help,
#      and a filler leaves 1 MiB: the CommitLog's next segment (and new
#      ConsumeQueue files) cannot be allocated: producers get "No space left
#      on device", no process dies or restarts;
#   2. the filler goes: writes resume without a restart;
#   3. the cleaner runs again and the usage goes to 92 %: producers get "disk
#      full" (the watermark), and again writes resume once the usage falls.
# Every acknowledged message is consumed exactly once, in order; the store
# stops cleanly and verifies; no process was killed by a signal (SIGBUS).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
. "$SRC/tests/helpers/smallfs.sh"
broker_init full-disk
smallfs_init 48


TOPIC=TopicFD
OTHER=$((($(date +%H | sed 's/^0//') + 12) % 24))
CONF="--set cleanResourceInterval=200 --set cleanFileForciblyEnable=false --set deleteWhen=$OTHER
      --set maxHashSlotNum=1000 --set maxIndexNum=4000"

# fill_leaving BYTES: the filler takes everything but BYTES of free space (the writer
# allocates segments meanwhile: place_filler looks again when the space shrank).
filler_size_leaving() {
    local have avail
    have=$(du -B1 "$FS/filler" 2>/dev/null | cut -f1)
    avail=$(stat -f -c '%a %S' "$FS" | awk '{ print $1 * $2 }')
    echo $((${have:-0} + avail - $1))
}
fill_leaving() {
    place_filler filler_size_leaving "$1"
}
acks() {
    cat "$T/p1" "$T/p2" 2>/dev/null | grep -c '^ACK '
}
# errs REGEX: error lines of both producers matching REGEX.
errs() {
    cat "$T/p1" "$T/p2" 2>/dev/null | grep '^ERR ' | grep -c -e "$1"
}
# wait_until CMD...: poll (bounded, 15 s) until the command succeeds.
wait_until() {
    local i=0
    while ! "$@" && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    "$@"
}
acks_grew() {
    [ "$(acks)" -gt "$BASE" ]
}
has_errs() {
    [ "$(errs "$1")" -gt 0 ]
}
is_full() {
    [ "$(status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{disk}{full} ? 1 : 0')" = "$1" ]
}
pids() {
    for w in writer flusher dispatcher cleaner; do printf '%s ' "$(worker_field $w pid)"; done
}

start_broker $CONF
ok $? "shmqd starts on a $FS_KIND of 48 MiB" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"
PIDS=$(pids)
CLEANER=$(worker_pid cleaner)

"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group GF --idle-ms 3000 \
    --stop-file "$T/producers.done" --max-ms 90000 >"$T/c" 2>"$T/c.err" &
CPID=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 100000000 --rate 1500 \
    --size 200 --size-max 1500 --timeout 2000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 100000000 --rate 1500 \
    --size 200 --size-max 1500 --async 8 --timeout 2000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$CPID $P1 $P2"
sleep 1

# ---- 1. the disk really fills up: ENOSPC, not SIGBUS ----
kill -STOP "$CLEANER"
fill_leaving 1048576
wait_until has_errs 'No space left on device'
ok $? "with 1 MiB left, sends fail with \"No space left on device\" ($(errs 'No space') so far)"
sleep 2
is "$(store_state)" "running" "the store keeps running on a full disk"
is "$(pids)" "$PIDS" "no worker died or was restarted"
alive $P1 && alive $P2 && alive $CPID
ok $? "producers and the consumer are alive"
grep -q 'append at .* failed: .*No space left on device' "$T/shmqd.log"
ok $? "the writer logged the failed allocation"
"$CTL" send --store "$STORE" $SMALL $TOPIC nospace >"$T/send1.out" 2>"$T/send1.err"
grep -q 'send failed: No space left on device: append at .* failed: .*No space left on device' \
    "$T/send1.err"
ok $? "a producer's error says the append failed for lack of space" || diag "$T/send1.err"

# ---- 2. space returns: writes resume without a restart ----
fill_to 0
BASE=$(acks)
wait_until acks_grew
ok $? "once space returns, sends are acknowledged again ($BASE -> $(acks))"
kill -CONT "$CLEANER"

# ---- 3. the watermark: "disk full" above diskSpaceWarningLevelRatio ----
fill_to 92
ok $? "a filler takes the usage to 92 %"
wait_until is_full 1
ok $? "at $(used_pct) % the cleaner reports the disk full"
wait_until has_errs 'disk full'
ok $? "sends fail with \"disk full\" ($(errs 'disk full') so far)"
"$CTL" send --store "$STORE" $SMALL $TOPIC full >"$T/send3.out" 2>"$T/send3.err"
grep -q "send failed: disk full: disk full: the CommitLog's filesystem is [0-9]*% used, above diskSpaceWarningLevelRatio 90%" \
    "$T/send3.err"
ok $? "a producer's error names the usage and diskSpaceWarningLevelRatio" || diag "$T/send3.err"
sleep 1
is "$(pids)" "$PIDS" "still no worker died or was restarted"
fill_to 0
wait_until is_full 0
ok $? "the usage fell: not full any more" ||
    { { echo "used $(used_pct) %"; du -s -B1 "$FS"/* "$STORE"/*; } >"$T/usage" 2>&1; diag "$T/usage"; }
BASE=$(acks)
wait_until acks_grew
ok $? "sends are acknowledged again without a restart ($BASE -> $(acks))"

# ---- the end: nothing acknowledged is lost ----
kill -TERM $P1 $P2
wait_pid $P1 300
wait_pid $P2 300
touch "$T/producers.done"
acked_keys "$T/p1" "$T/p2" >"$T/acked"
NACK=$(wc -l <"$T/acked" | tr -d ' ')
wait_pid $CPID 600
ok $? "the consumer saw contiguous queue offsets and whole messages" ||
    { grep BAD "$T/c" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/c.err"; }
awk '$1 == "MSG" { print $4 }' "$T/c" | sort >"$T/consumed"
cmp -s "$T/acked" "$T/consumed"
ok $? "the consumer got exactly the $NACK acknowledged messages, each once"
is "$(pids)" "$PIDS" "no worker died or was restarted during the run"
# Refusals by cause: a full disk is no producer's bad input.
is "$(status_json | jfield rejects)" "0" "status counts no refusal as bad input (rejects)"
full_refused=$(status_json | jfield refused_disk_full)
full_errs=$(($(errs 'No space left on device') + $(errs 'disk full') + 2))
[ -n "$full_refused" ] && [ "$full_refused" -ge "$full_errs" ]
ok $? "status counts every refusal for lack of space in refused_disk_full ($full_refused >= $full_errs)"
# The optional workers, where installed, wait for space too: none is restarted.
for w in indexer scheduler; do
    r=$(worker_field $w restarts)
    [ -n "$r" ] || continue
    n=$((n + 1))
    if [ "$r" -eq 0 ]; then
        echo "ok $n - the $w was not restarted"
    else
        echo "not ok $n - the $w was not restarted (restarts: $r)"
    fi
done
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL $CONF >"$T/verify" 2>&1
ok $? "verify passes: the store needs no repair" || diag "$T/verify"
stored_load_records $TOPIC | awk '$4 != 1' >"$T/torn"
is "$(wc -l <"$T/torn" | tr -d ' ')" 0 "every stored record is whole"
grep -q 'killed by signal' "$T/shmqd.log"
ok $((!$?)) "no process was killed by a signal" || diag "$T/shmqd.log"

done_testing
