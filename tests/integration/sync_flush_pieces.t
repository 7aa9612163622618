#!/bin/sh
# Under SYNC_FLUSH every group commit msyncs the few records written since
# the last one.  The page cache writes a file back in the pieces (folios)
# the file's first writes put there, a whole piece for one dirty byte: the
# CommitLog's zeros written 1 MiB at a time made each commit of a 128-byte
# message write 1 MiB (Linux 6.16+ on ext4), five times the time of a 4 KiB
# write.  The writer now writes a SYNC_FLUSH CommitLog's zeros 64 KiB at a
# time (SHMQ_MF_FINE).  Sent one at a time, each message re-dirties the
# piece the previous commit cleaned; the kernel counts the piece's size
# against the writer (/proc/PID/io write_bytes), at most 64 KiB a message
# (128 KiB when one straddles two pieces), where it was 1 MiB.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init sync-flush-pieces

# write_bytes PID: the bytes PID has dirtied for writing so far.
write_bytes() {
    awk '/^write_bytes:/ { print $2 }' "/proc/$1/io" 2>/dev/null
}

# A 16 MiB segment: written with zeros whole at its creation.
start_broker --set flushDiskType=SYNC_FLUSH --set mappedFileSizeCommitLog=16777216
ok $? "shmqd starts with SYNC_FLUSH" || diag "$T/shmqd.log"
WR=$(worker_pid writer)
[ -n "$WR" ] && [ -n "$(write_bytes "$WR")" ]
ok $? "the writer's I/O counts are readable (pid $WR)"
"$CTL" topic create --store "$STORE" PieceTopic --queues 1 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

send_some() { # send_some FROM TO: one message at a time, each acknowledged once flushed
    local i=$1 bad=0
    while [ "$i" -lt "$2" ]; do
        "$CTL" send --store "$STORE" PieceTopic "body $i" >>"$T/send.out" 2>&1 || bad=$((bad + 1))
        i=$((i + 1))
    done
    [ "$bad" -eq 0 ]
}
send_some 0 3
ok $? "3 messages sent" || diag "$T/send.out"
b0=$(write_bytes "$WR")
send_some 3 33
ok $? "30 more, one at a time" || diag "$T/send.out"
b1=$(write_bytes "$WR")
per=$(((b1 - b0) / 30))
[ "$per" -le 131072 ]
ok $? "each commit wrote back at most 128 KiB: $per bytes a message"

# ---- The dispatcher reads the records with pread --------------------------------------------
# Its cursor reads a staged log through a buffer (commitlog.h, shmq_cl_cursor_read_through()):
# the first look at each page of a mapping is a fault (a microsecond or more in a virtual
# machine), and a 64 KiB piece of the log's cache costs one.  Its faults while 8 MiB of
# records go by: its consume queue's pages (a store into each, again after each flush) and
# a few more, fewer than half the log's pieces; it faulted once a piece more than that
# (162 for 140 pieces; 22 after, with the buffer resident from the start: a page the read
# first touched there was a fault, up to its 256 pages when the dispatcher lagged).
minflt() { # minor faults of PID so far (/proc/PID/stat field 10)
    awk '{ print $10 }' "/proc/$1/stat" 2>/dev/null
}
DI=$(worker_pid dispatcher)
wait_pos dispatched
f0=$(minflt "$DI")
w0=$(position wrote)
"$HELPERS/load_producer" --store "$STORE" --topic PieceTopic --id 1 --count 2200 --size 4000 \
    --async 32 --timeout 30000 >"$T/bulk.out" 2>"$T/bulk.err"
ok $? "2200 messages of 4000 bytes sent" || diag "$T/bulk.err"
wait_pos dispatched 600
ok $? "the dispatcher reached wrote" || diag "$T/shmqd.log"
f1=$(minflt "$DI")
pieces=$((($(position wrote) - w0) / 65536))
[ -n "$f0" ] && [ -n "$f1" ] && [ "$pieces" -ge 100 ] && [ "$((f1 - f0))" -lt "$((pieces / 2))" ]
ok $? "the dispatcher faulted $((f1 - f0)) times while the records filled $pieces pieces of 64 KiB"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL --set mappedFileSizeCommitLog=16777216 >"$T/verify.out" 2>&1
ok $? "verify passes" || diag "$T/verify.out"

# ---- What the disk is sent ----------------------------------------------------------------
# The writer puts a SYNC_FLUSH CommitLog's records into the file with pwrite
# (commitlog.h, "Staged appends"): the page cache marks only the 4 KiB blocks
# written as dirty, and each group commit writes back those, where a store
# through the mapping dirtied, and had written back, the whole 64 KiB piece.
# Counted by the disk itself: the store alone on an ext4 image through a
# loop device, whose sectors written (/sys/block/loopN/stat) are all the
# store's: the records, the journal, and the consume queues' and the
# checkpoint's once-a-second flushes.
. "$SRC/tests/helpers/powercut.sh"
pc_init 256
# The block size of the disks the store runs on (an image this small gets 1 KiB ones).
pc_mkimage "$T/disk.img" 256 4096 && pc_mount "$T/disk.img"
ok $? "the store's own ext4 image (4 KiB blocks) is mounted ($LOOP)" ||
    { diag "$T/mkfs.err"; diag "$T/mount.err"; }
dev_written() { # sectors the loop device has written
    awk '{ print $7 }' "/sys/block/${LOOP##*/}/stat"
}
pc_start_broker --set flushDiskType=SYNC_FLUSH --set mappedFileSizeCommitLog=16777216
ok $? "shmqd starts on it with SYNC_FLUSH" || diag "$T/shmqd.log"
"$CTL" topic create --store "$STORE" PieceTopic --queues 1 >"$T/topic2.out" 2>&1
ok $? "topic created" || diag "$T/topic2.out"
send_some 0 3
ok $? "3 messages sent" || diag "$T/send.out"
sync # what came before the measure is on the disk
s0=$(dev_written)
send_some 3 63
ok $? "60 more, one at a time" || diag "$T/send.out"
s1=$(dev_written)
per=$(((s1 - s0) * 512 / 60))
[ "$per" -le 16384 ]
ok $? "the disk was sent at most 16 KiB a message, journal and flushes included: $per bytes"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL --set mappedFileSizeCommitLog=16777216 >"$T/verify2.out" 2>&1
ok $? "verify passes" || diag "$T/verify2.out"
is "$("$CTL" dump --store "$STORE" $SMALL --set mappedFileSizeCommitLog=16777216 commitlog --json 2>/dev/null | grep -c '"topic":"PieceTopic"')" \
    "63" "the 63 messages are in the CommitLog"
done_testing
