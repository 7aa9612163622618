#!/bin/sh
# The cleaner's rules on a running broker whose store lies on a small
# filesystem this test mounts (64 MiB tmpfs, or a loop-mounted image), with
# 1 MiB segments, a cleaning run every 200 ms, and a clock the test
# controls through what RocketMQ's rule reads: file mtimes (touch -d
# "4 days ago") and deleteWhen (an hour that is not now, then this hour).
# The usage is set with a filler file:
#   - below diskMaxUsedSpaceRatio, outside deleteWhen: nothing is deleted;
#   - above it (80 %): expired segments, oldest first, up to the first
#     recent one (no hole); ConsumeQueue files below the new minimum; the
#     queue's minimum; a consumer holding views into a deleted segment
#     still reads them, and its next pull behind the minimum gets
#     OFFSET_TOO_SMALL naming the next valid offset;
#   - above diskSpaceCleanForciblyRatio (87 %): unexpired segments too, never
#     the newest;
#   - above diskSpaceWarningLevelRatio (92 %): "disk full" to producers,
#     taken back once the usage falls;
#   - shmqctl clean: expired segments at any hour, reported;
#   - deleteWhen = this hour: expired segments at low usage.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
. "$SRC/tests/helpers/smallfs.sh"
broker_init cleaner
smallfs_init 64
# shmqd starts the optional workers installed next to it: this store runs the
# writer, flusher, dispatcher and cleaner only, so that what is measured here
# (when deleted files' space returns) depends on no other worker.
mkdir -p "$T/bin"
for b in shmqd shmq-writer shmq-flusher shmq-dispatcher shmq-cleaner; do
    cp "$BUILD/$b" "$T/bin/$b" || { echo "Bail out! $BUILD/$b not built"; exit 1; }
done
SHMQD="$T/bin/shmqd"

SEG=1048576
TOPIC=TopicCL
HOUR=$(date +%H | sed 's/^0//')
OTHER=$(((HOUR + 12) % 24))
NEXT=$(((HOUR + 1) % 24))
CONF="--set cleanResourceInterval=200 --set deleteCommitLogFilesInterval=0
      --set flushIntervalCommitLog=100 --set messageIndexEnable=false"

# sj PERL-EXPR: an expression over the status JSON ($j).
sj() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; my $v = eval $ARGV[0]; $v = $v ? 1 : 0 if JSON::PP::is_bool($v);
        print defined $v ? $v : "null", "\n"' "$1"
}
# wait_for PERL-EXPR VALUE [TENTHS]: until the status expression equals VALUE.
wait_for() {
    local lim=${3:-100} i=0
    while [ $i -lt "$lim" ]; do
        [ "$(sj "$1")" = "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
seg_name() {
    printf '%020d' "$1"
}
seg_count() {
    ls "$STORE/commitlog" | grep -c '^[0-9]\{20\}$'
}
cq_files() {
    ls "$STORE/consumequeue/$TOPIC/0" 2>/dev/null | grep -c '^[0-9]\{20\}$'
}
# age N...: set the mtime of segments N (index) to four days ago.
age() {
    local i
    for i in "$@"; do
        touch -d "4 days ago" "$STORE/commitlog/$(seg_name $((i * SEG)))"
    done
}
# settled: everything written is flushed and dispatched (the cleaner's bound).
settled() {
    wait_for '$j->{positions}{flushed} == $j->{positions}{wrote} &&
              $j->{positions}{dispatched} == $j->{positions}{wrote}' 1 100
}
send() {
    "$CTL" send --store "$STORE" $SMALL "$TOPIC" --count "$1" --size 1000 >"$T/send.out" 2>&1
}

start_broker $CONF --set deleteWhen=$OTHER
ok $? "shmqd starts on a $FS_KIND of 64 MiB with a cleaner" || diag "$T/shmqd.log"
is "$(worker_field cleaner state)" "running" "the cleaner runs"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 1 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"
send 6000
ok $? "6000 messages of 1000 bytes sent" || diag "$T/send.out"
settled
ok $? "everything is flushed and dispatched"
NSEG=$(seg_count)
[ "$NSEG" -ge 7 ]
ok $? "$NSEG CommitLog segments (the last may be prepared ahead)"
is "$(sj '$j->{disk}{max_used_ratio} . " " . $j->{disk}{clean_forcibly_ratio} . " " .
    $j->{disk}{warning_ratio}')" "0.75 0.85 0.9" "status shows the thresholds"
is "$(sj '$j->{disk}{used_ratio} > 0 && $j->{disk}{used_ratio} < 0.3 && !$j->{disk}{full}')" 1 \
    "status shows the disk usage, not full"
is "$(sj '$j->{last_clean}{reason}')" "none" "no cleaning yet"

# ---- below every watermark, outside deleteWhen: nothing ----
age 0 1 2 4
sleep 1
is "$(seg_count)" "$NSEG" "expired segments stay while the usage is low and the hour is not in deleteWhen"

# ---- a consumer holds views into segment 0 ----
"$HELPERS/clean_reader" "$STORE" $TOPIC 0 "$T/reader.ready" "$T/reader.go" >"$T/reader" \
    2>"$T/reader.err" &
RPID=$!
bg_add $RPID
i=0
while [ ! -f "$T/reader.ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q '^HELD 32 0 ' "$T/reader"
ok $? "a consumer holds 32 messages of segment 0" || diag "$T/reader.err"
CQ_BEFORE=$(cq_files)

# ---- above diskMaxUsedSpaceRatio: expired segments up to the first recent one ----
fill_to 80
wait_for '$j->{positions}{min}' $((3 * SEG)) 50
ok $? "at $(used_pct) % the cleaner deletes the three expired segments before the recent one" ||
    diag "$T/shmqd.log"
[ ! -e "$STORE/commitlog/$(seg_name 0)" ] && [ -e "$STORE/commitlog/$(seg_name $((3 * SEG)))" ] &&
    [ -e "$STORE/commitlog/$(seg_name $((4 * SEG)))" ]
ok $? "segments 0-2 are gone; 3 (recent) and 4 (expired, after it) stay: no hole"
is "$(sj '$j->{last_clean}{reason} . " " . $j->{last_clean}{deleted_commitlog}')" "disk_usage 3" \
    "status reports the last cleaning: reason and CommitLog segments"
CQ_AFTER=$(cq_files)
[ "$CQ_AFTER" -lt "$CQ_BEFORE" ]
ok $? "ConsumeQueue files below the new minimum are deleted ($CQ_BEFORE -> $CQ_AFTER)"
is "$(sj '$j->{last_clean}{deleted_consumequeue}')" "$((CQ_BEFORE - CQ_AFTER))" \
    "status counts the ConsumeQueue files"
FIRST=$(ls "$STORE/consumequeue/$TOPIC/0" | head -n 1 | sed 's/^0*//')
"$CTL" dump --store "$STORE" $SMALL consumequeue $TOPIC 0 --from $((${FIRST:-0} / 20 + 299)) \
    --count 1 --json >"$T/cq0" 2>&1
perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_); exit($j->{phys_offset} >= 3 * 1048576 ?
    0 : 1)' "$T/cq0" 2>/dev/null
ok $? "the first ConsumeQueue file kept ends with units of the kept segments" || diag "$T/cq0"

touch "$T/reader.go"
wait_pid $RPID 100
ok $? "the consumer read its views of the deleted segment intact" || diag "$T/reader"
grep -q '^STILL 32 ok$' "$T/reader"
ok $? "every held message still compares equal" || diag "$T/reader"
MINQ=$(awk '$1 == "PULL" && $2 == "OFFSET_TOO_SMALL" { print $3 }' "$T/reader")
[ -n "$MINQ" ] && [ "$MINQ" -gt 32 ]
ok $? "the next pull behind the minimum is OFFSET_TOO_SMALL with next offset $MINQ" || diag "$T/reader"
awk -v m="$MINQ" '$1 == "PULL" && $2 == "FOUND" && $4 == m { f = 1 } END { exit !f }' "$T/reader"
ok $? "pulling from that offset finds messages" || diag "$T/reader"

wait_released
ok $? "no process maps a deleted file any more: the space is back"

# ---- above diskSpaceCleanForciblyRatio: unexpired segments, never the newest ----
fill_to 87
wait_for '$j->{positions}{min}' $((6 * SEG)) 50
ok $? "above 85 % every segment but the newest is deleted, expired or not"
WROTE=$(position wrote)
[ -e "$STORE/commitlog/$(seg_name $((WROTE / SEG * SEG)))" ] && [ "$(seg_count)" -le 2 ]
ok $? "only the segment being written (and one prepared ahead) is left"
is "$(sj '$j->{last_clean}{reason}')" "clean_forcibly" "reason: clean_forcibly"

wait_released
ok $? "the space of the deleted segments is back (now $(used_pct) %)"

# ---- above diskSpaceWarningLevelRatio: disk full ----
fill_to 92
wait_for '$j->{disk}{full}' 1 30
ok $? "at $(used_pct) % status says the disk is full"
"$CTL" send --store "$STORE" $SMALL $TOPIC "refused" >"$T/full.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q 'disk full' "$T/full.out"
ok $? "a send is refused with \"disk full\"" || diag "$T/full.out"
grep -q 'disk full: .* new messages are refused' "$T/shmqd.log"
ok $? "the cleaner logged it"
fill_to 0
wait_for '$j->{disk}{full}' 0 30
ok $? "the usage fell: no longer full"
"$CTL" send --store "$STORE" $SMALL $TOPIC "accepted again" >"$T/ok.out" 2>&1
ok $? "sends are accepted again without a restart" || diag "$T/ok.out"

# ---- shmqctl clean: expired segments now, whatever the hour ----
send 2000
ok $? "2000 more messages" || diag "$T/send.out"
settled
MIN=$(position min)
age $((MIN / SEG)) $((MIN / SEG + 1))
"$CTL" clean --store "$STORE" $SMALL --json >"$T/clean.json" 2>&1
ok $? "shmqctl clean answers" || diag "$T/clean.json"
is "$(jfield deleted_commitlog <"$T/clean.json") $(jfield reason <"$T/clean.json")" "2 manual" \
    "it reports the two expired segments it deleted"
is "$(jfield min <"$T/clean.json")" "$((MIN + 2 * SEG))" "and the new CommitLog minimum"
"$CTL" clean --store "$STORE" $SMALL >"$T/clean.txt" 2>&1
grep -q '^deleted 0 CommitLog segment(s)' "$T/clean.txt"
ok $? "a second request finds nothing more to delete" || diag "$T/clean.txt"
"$CTL" status --store "$STORE" $SMALL >"$T/status.txt" 2>&1
grep -q '^disk: .*max used 75%, clean forcibly 85%, warning 90%' "$T/status.txt" &&
    grep -q '^cleaning:  last at .* (manual)' "$T/status.txt"
ok $? "status text shows the disk and the last cleaning" || diag "$T/status.txt"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

# ---- deleteWhen: this hour deletes expired segments at low usage ----
start_broker $CONF --set deleteWhen="$HOUR;$NEXT"
ok $? "shmqd starts again with deleteWhen=$HOUR;$NEXT" || diag "$T/shmqd.log"
send 1000
ok $? "1000 more messages" || diag "$T/send.out"
settled
MIN=$(position min)
age $((MIN / SEG))
wait_for '$j->{positions}{min}' $((MIN + SEG)) 50
ok $? "in a deleteWhen hour the expired oldest segment is deleted at $(used_pct) %" ||
    diag "$T/shmqd.log"
is "$(sj '$j->{last_clean}{reason}')" "delete_when" "reason: delete_when"
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group GC --count 100 --timeout 3000 >"$T/cons" 2>&1
ok $? "a consumer of a new group reads from the minimum" || diag "$T/cons"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the cleaned store" || diag "$T/verify"
grep -q 'killed by signal' "$T/shmqd.log"
ok $((!$?)) "no process was killed by a signal"

done_testing
