#!/bin/sh
# shmqctl verify on a running store under load: two producers (one with 16
# requests in flight), a consumer group committing offsets, and delayed and
# timed messages the scheduler delivers, on a broker with small segments.
# Proves: verify run five times while the store keeps writing (wrote grows
# between runs) reports no problem every time: it checks the snapshot the
# store had published when it started (the log below wrote, each queue
# below its max offset, records not dispatched then left alone) and says
# so; on the same running store, a bit flipped in the body of the first
# record (far below the snapshot) is found, named by file and offset, and
# is the only problem.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init verify-live

RUNS=5

# XOR byte $2 of file $1 with mask $3 (decimal).
flip() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
        seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short read";
        seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ $ARGV[2]); close $f or die' "$1" "$2" "$3"
}
# wait_wrote BYTES: wait (bounded, 60 s) until the store's wrote position reaches BYTES.
wait_wrote() {
    local i=0 w
    while [ $i -lt 600 ]; do
        w=$(position wrote)
        [ -n "$w" ] && [ "$w" -ge "$1" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicV --queues 4 >"$T/topic.out" 2>&1
ok $? "topic TopicV created with 4 queues" || diag "$T/topic.out"

# ---- the load ----------------------------------------------------------------------
"$HELPERS/load_producer" --store "$STORE" --topic TopicV --id 1 --count 100000000 --size 100 \
    --size-max 3000 --async 16 --rate 3000 --tags tv >"$T/p1.out" 2>&1 &
bg_add $!
"$HELPERS/load_producer" --store "$STORE" --topic TopicW --id 2 --count 100000000 --size 10 \
    --size-max 500 --rate 1000 >"$T/p2.out" 2>&1 &
bg_add $!
"$HELPERS/load_consumer" --store "$STORE" --topic TopicV --group GV --idle-ms 600000 \
    --max-ms 600000 >"$T/c.out" 2>&1 &
bg_add $!
(
    while :; do
        "$CTL" send --store "$STORE" $SMALL TopicD delayed --delay-level 1 --count 20 --async 4
        "$CTL" send --store "$STORE" $SMALL TopicD timed --deliver-after 700 --count 20 --async 4
        sleep 0.2
    done
) >"$T/delayed.out" 2>&1 &
bg_add $!
wait_wrote 2097152
ok $? "the producers wrote 2 MiB" || diag "$T/p1.out"

# ---- verify, again and again, while the store writes ------------------------------------
prev=0
grew=0
i=1
while [ $i -le $RUNS ]; do
    "$CTL" verify --store "$STORE" $SMALL >"$T/verify$i.out" 2>"$T/verify$i.err"
    rc=$?
    is "$rc" "0" "verify run $i on the store under load finds no problem" ||
        { diag "$T/verify$i.out"; diag "$T/verify$i.err"; }
    grep -q '^verify: OK' "$T/verify$i.out"
    ok $? "run $i says OK" || diag "$T/verify$i.out"
    w=$(sed -n 's/.*the store runs: checking .* the log below wrote \([0-9]*\) .*/\1/p' \
        "$T/verify$i.err")
    [ -n "$w" ]
    ok $? "run $i says it checks the snapshot published at its start (wrote $w)" ||
        diag "$T/verify$i.err"
    [ -n "$w" ] && [ "$w" -gt "$prev" ] && grew=$((grew + 1))
    prev=${w:-0}
    i=$((i + 1))
done
is "$grew" "$RUNS" "the store kept writing: each run's snapshot is past the previous one"
now=$(position wrote)
[ -n "$now" ] && [ "$now" -gt "$prev" ]
ok $? "and wrote moved on after the last run ($prev -> $now)"

# ---- real damage below the snapshot is still found -----------------------------------------
# The first record (phys 0, IPv4 hosts): its body starts at byte 88.
SEG0="$STORE/commitlog/00000000000000000000"
flip "$SEG0" $((88 + 5)) 4
"$CTL" verify --store "$STORE" $SMALL >"$T/damaged.out" 2>"$T/damaged.err"
is "$?" "1" "verify on the running store with a flipped body bit fails"
grep -q "^problem: file $SEG0 offset 0: record at phys 0: " "$T/damaged.out"
ok $? "and names the file and offset of the damaged record" || diag "$T/damaged.out"
grep -q '^verify: FAILED: 1 problems' "$T/damaged.out"
ok $? "it is the only problem" || diag "$T/damaged.out"
flip "$SEG0" $((88 + 5)) 4

for p in $BG_PIDS; do
    kill -TERM "$p" 2>/dev/null
done
for p in $BG_PIDS; do
    wait_pid "$p" 100
done
BG_PIDS=""
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/stopped.out" 2>&1
is "$?" "0" "verify on the stopped store finds no problem" || diag "$T/stopped.out"
done_testing
