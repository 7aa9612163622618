#!/bin/sh
# The indexer on a disk with no room for its next IndexFile (the fault shim
# makes every fallocate under index/ of shmq-indexer fail with ENOSPC while
# a flag file exists): it logs once that it waits for space, sleeps while it
# waits (it does not spin: its CPU time stays a small part of the wait), is
# not restarted, and the other workers go on (sends are acknowledged and
# dispatched); once space returns it indexes everything, and a key sent
# during the wait is found.  TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init indexer-nospace

SHIM="$BUILD/tests/fault/libfail_sync.so"
# Small IndexFiles (64 slots, 100 entries): a new one every 100 keys.
INDEX="--set maxHashSlotNum=64 --set maxIndexNum=100"
FULL="$T/disk.full"

LD_PRELOAD="$SHIM" SHMQ_FAULT_PROG=shmq-indexer SHMQ_FAULT_PATH="$STORE/index" \
    SHMQ_FAULT_NOSPACE="$FULL" "$SHMQD" --store "$STORE" $SMALL $INDEX >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_state running 300 && wait_workers 300
ok $? "shmqd starts with the shim on the indexer" || diag "$T/shmqd.log"
IDX=$(worker_pid indexer)
[ -n "$IDX" ]
ok $? "the indexer runs (pid $IDX)" || diag "$T/shmqd.log"

send() {
    "$CTL" send --store "$STORE" $SMALL TopicNS "$@" >>"$T/send.out" 2>&1
}
cpu_ticks() { # utime + stime of process $1, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

send --count 50 --size 32 --keys "before"
ok $? "50 messages with keys sent" || diag "$T/send.out"
wait_pos indexed
ok $? "they are indexed" || diag "$T/shmqd.log"

# ---- no room for the next IndexFile ----
touch "$FULL"
send --count 300 --size 32 --keys "during"
ok $? "300 more are acknowledged while the indexer has no space" || diag "$T/send.out"
send "the one to find" --keys "needle"
wait_pos dispatched
ok $? "and dispatched" || diag "$T/shmqd.log"
i=0
while ! grep -q 'disk full: no space for an index file' "$T/shmqd.log" && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q 'disk full: no space for an index file' "$T/shmqd.log"
ok $? "the indexer says it waits for space" || diag "$T/shmqd.log"
[ "$(position indexed)" -lt "$(position wrote)" ]
ok $? "it has not indexed past the full disk ($(position indexed) < $(position wrote))"
t0=$(cpu_ticks "$IDX")
sleep 3
t1=$(cpu_ticks "$IDX")
# A process retrying without a pause takes most of a core: hundreds of the 300 ticks of
# these 3 s.  One that sleeps out its idle timeout between tries takes a few.
[ -n "$t0" ] && [ -n "$t1" ] && [ $((t1 - t0)) -lt 60 ]
ok $? "it sleeps while it waits: $((t1 - t0)) ticks of CPU in 3 s"
is "$(grep -c 'disk full: no space for an index file' "$T/shmqd.log")" "1" "and said so once"

# ---- space returns ----
rm -f "$FULL"
wait_pos indexed
ok $? "once space returns, everything is indexed" || diag "$T/shmqd.log"
grep -q 'disk space is back: indexing goes on' "$T/shmqd.log"
ok $? "the indexer says so" || diag "$T/shmqd.log"
"$CTL" query --store "$STORE" $SMALL $INDEX --topic TopicNS --key needle >"$T/q" 2>&1
ok $? "a key sent during the wait is found" || diag "$T/q"
grep -q 'body=the one to find' "$T/q"
ok $? "with its body" || diag "$T/q"
is "$(worker_field indexer pid)" "$IDX" "the indexer was never restarted"

stop_broker
ok $? "shmqd stops" || diag "$T/shmqd.log"
done_testing
