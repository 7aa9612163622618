#!/bin/sh
# shmqctl verify counts a record whose __CRC32# tail is a few bits from an
# intact one as damaged, as recovery and consumers do (formats.md, "What a
# consumer checks"): a flipped bit in the name "__CRC32#" or in the 0x02
# before it makes the decoder take the tail for an absent one (a record as
# RocketMQ writes by default, checked by its body CRC alone), and verify used
# to pass such a store while shmqd refused to start on it (found by the
# corruption campaign, tests/torture/corruption.pl).  Each damage is made in
# a copy of a stopped store; verify must exit 1 naming the CommitLog file and
# the record's offset in it.  With the checkpoint's record-CRC marker (a
# store shmq wrote) the record is reported as one that lacks the tail every
# record carries; without it, as a damaged tail.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init verify-crc-tail

TOPIC=TopicV
SEG=1048576

# XOR byte $2 of file $1 with mask $3 (decimal).
flip() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
        seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short read";
        seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ $ARGV[2]); close $f or die' "$1" "$2" "$3"
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" send --store "$STORE" $SMALL $TOPIC --count 20 --size 300 >"$T/send.out" 2>&1
ok $? "20 messages sent" || diag "$T/send.out"
stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
"$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump.json" 2>"$T/dump.err"
set -- $(sed -n 10p "$T/dump.json" | perl -MJSON::PP -ne '$j = decode_json($_);
    print "$j->{phys_offset} $j->{size}\n"')
PHYS=$1
SIZE=$2
[ -n "$PHYS" ] && [ -n "$SIZE" ]
ok $? "the tenth record is at $PHYS, $SIZE bytes" || diag "$T/dump.err"
"$CTL" verify --store "$STORE" $SMALL >"$T/v0.out" 2>&1
ok $? "verify passes on the intact store" || diag "$T/v0.out"
cp -a "$STORE" "$T/intact"
FILE=commitlog/$(printf '%020d' $((PHYS - PHYS % SEG)))
REL=$((PHYS % SEG))

# "__CRC32#" -> "__CAC32#" (bit 1 of its third byte), then the 0x02 before the name.
k=0
for at in $((SIZE - 20 + 3)):2 $((SIZE - 21)):16; do
    k=$((k + 1))
    rm -rf "$STORE"
    cp -a "$T/intact" "$STORE"
    flip "$STORE/$FILE" $((REL + ${at%%:*})) ${at##*:}
    "$CTL" verify --store "$STORE" $SMALL >"$T/v$k.out" 2>&1
    is "$?" "1" "verify fails with byte $((${at%%:*})) of the record (in its __CRC32# tail) flipped"
    grep -q "problem: file $STORE/$FILE offset $REL: record at phys $PHYS" "$T/v$k.out" &&
        grep -q "no __CRC32# property, which every record from 0 on carries" "$T/v$k.out"
    ok $? "naming the file and the record, that the marker requires a tail" || diag "$T/v$k.out"
done

# Without the checkpoint's record-CRC marker (a store RocketMQ wrote, whose records need no
# tail) the same flips are still told from a missing tail: a few bits from one is damage.
for at in $((SIZE - 20 + 3)):2 $((SIZE - 21)):16; do
    k=$((k + 1))
    rm -rf "$STORE"
    cp -a "$T/intact" "$STORE"
    perl -e 'open(my $f, "+<", $ARGV[0]) or die; seek($f, 64, 0); print $f "\0" x 24; close $f or die' \
        "$STORE/checkpoint"
    flip "$STORE/$FILE" $((REL + ${at%%:*})) ${at##*:}
    "$CTL" verify --store "$STORE" $SMALL >"$T/v$k.out" 2>&1
    is "$?" "1" "no marker: verify fails with byte $((${at%%:*})) of the record flipped"
    grep -q "problem: file $STORE/$FILE offset $REL: record at $PHYS: damaged __CRC32# property" \
        "$T/v$k.out"
    ok $? "naming the file and the record, and the damaged tail" || diag "$T/v$k.out"
done
done_testing
