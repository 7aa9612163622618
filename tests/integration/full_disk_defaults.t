#!/bin/sh
# A full disk recovers by itself with the cleaner on its defaults (no
# cleaning option set): producers write three times the size of a 16 MiB
# filesystem.  Each time usage passes diskMaxUsedSpaceRatio (75 %) and the
# forced-cleaning level (85 %) the cleaner deletes the oldest segments; every
# process that maps them (writer, flusher, dispatcher, indexer, scheduler)
# must let go of the deleted files, or their blocks stay allocated, the disk
# stays above the 90 % watermark and every send is refused "disk full" for
# good (PITFALLS 25).  Asserted: the producers get their acknowledgements
# past three disks' worth of data, no worker is restarted, the disk is not
# full at the end, and the store stops cleanly and verifies.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
. "$SRC/tests/helpers/smallfs.sh"
broker_init full-disk-defaults
smallfs_init 16

TOPIC=TopicFDD
DISK=$((16 * 1024 * 1024))
GOAL=$((3 * DISK))

acked_bytes() {
    # ACK <key> <id> <seq> <queue> <qoff> <phys>: the record sizes are not printed; the
    # CommitLog offset of the newest acknowledged record bounds the bytes written.
    # Each producer's acknowledged offsets grow: its last ACK line is its newest (read from
    # the end: the files also hold every refusal).
    for f in "$T/p1" "$T/p2"; do
        tac "$f" 2>/dev/null | grep -m 1 '^ACK '
    done | awk '$7 > m { m = $7 } END { print m + 0 }'
}
pids() {
    for w in writer flusher dispatcher indexer scheduler cleaner; do
        printf '%s ' "$(worker_field $w pid)"
    done
}
is_full() {
    [ "$(status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{disk}{full} ? 1 : 0')" = "$1" ]
}

# mapped_deleted: how many mappings of deleted files the workers hold (listed in $T/deleted).
# Producer rings are memfds (never on disk, "/memfd:... (deleted)" by nature): not counted.
mapped_deleted() {
    : >"$T/deleted"
    for p in $(all_worker_pids); do
        ls -l /proc/"$p"/map_files 2>/dev/null | grep '(deleted)' | grep -v ' -> /memfd:' |
            sed "s|^.* -> |pid $p ($(cat /proc/"$p"/comm 2>/dev/null)): |" >>"$T/deleted"
    done
    wc -l <"$T/deleted" | tr -d ' '
}
start_broker
ok $? "shmqd starts on a $FS_KIND of 16 MiB with the cleaner on its defaults" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"
PIDS=$(pids)

"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 1 --count 100000000 --rate 4000 \
    --size 1000 --size-max 3000 --timeout 2000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id 2 --count 100000000 --rate 4000 \
    --size 1000 --size-max 3000 --async 8 --timeout 2000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$P1 $P2"

# Bounded: 300 s of wall time.  Progress is stuck for good when deleted files stay mapped.
END_AT=$(($(date +%s) + 300))
while [ "$(acked_bytes)" -lt $GOAL ] && [ "$(date +%s)" -lt $END_AT ] && alive $P1 && alive $P2; do
    sleep 0.2
done
got=$(acked_bytes)
[ "$got" -ge $GOAL ]
ok $? "acknowledged writes went past three disks' worth ($got bytes of log, goal $GOAL)" || {
    status_json >"$T/status.json"
    diag "$T/status.json"
    mapped_deleted >/dev/null
    diag "$T/deleted"
}
kill -TERM $P1 $P2 2>/dev/null
wait_pid $P1 300
wait_pid $P2 300
is "$(pids)" "$PIDS" "no worker was restarted"
full_refusals=$(cat "$T/p1" "$T/p2" | grep '^ERR ' | grep -c 'disk full')
echo "# sends refused \"disk full\" on the way: $full_refusals"
# The cleaner looks every cleanResourceInterval (10 s by default) and deletes at most
# deleteFileBatchMax files a run: a loaded machine may need several runs (bounded: 180 s).
# The store must have left the full state for good: not full in two looks 2 s apart (a file
# the store creates meanwhile, a queue's next file, may take it over the mark once more
# until the cleaner's next run).
i=0
until { is_full 0 && sleep 2 && is_full 0; } || [ $i -ge 900 ]; do
    sleep 0.2
    i=$((i + 1))
done
is_full 0
ok $? "the disk is not full at the end ($(used_pct) % used)" || {
    status_json >"$T/status-end.json"
    diag "$T/status-end.json"
}
i=0
while [ "$(mapped_deleted)" -gt 0 ] && [ $i -lt 30 ]; do
    sleep 0.1
    i=$((i + 1))
done
deleted=$(mapped_deleted)
is "$deleted" "0" "no worker maps a deleted file (checked within 3 s)" || diag "$T/deleted"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes" || diag "$T/verify"

done_testing
