#!/bin/sh
# Consumers check every record before they deliver it, on a real broker with
# small segments.  Damage is made in a stopped store in older CommitLog
# segments (a flipped body bit, a flipped header bit, a flipped bit in the
# name of the __CRC32# property), in an older ConsumeQueue file (a unit's
# size), and in the current segment while the broker runs; one older record
# is rewritten as RocketMQ writes by default (no __CRC32#).  Proves: shmqd
# starts normally; `shmqctl consume` delivers every good message intact
# (the RocketMQ-style one too) and never a damaged one, stops at each with
# exit 1 naming the CommitLog file, the offset in it and the queue offset;
# `--skip-corrupt` refuses a message that is good or that the group does not
# stand at, and otherwise moves the group past exactly that one message
# with a line naming it; --no-check (check.crcs=false) lets the flipped
# bodies through but still stops at the unit that does not match.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init consumer-crc

TOPIC=TopicC
N=1500
SIZE=2000
SEG=1048576

# XOR byte $2 of file $1 with mask $3 (decimal).
flip() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
        seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short read";
        seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ $ARGV[2]); close $f or die' "$1" "$2" "$3"
}
# The CommitLog file holding offset $1.
segfile() {
    printf '%s/commitlog/%020d' "$STORE" $(($1 - $1 % SEG))
}
# Field $2 of the record of queue offset $1, from the dump taken before any damage.
rec() {
    sed -n "$(($1 + 1))p" "$T/before.json" | jfield "$2"
}
# Flip bit mask $3 of byte $2 (from the record's start) of the record of queue offset $1.
flip_rec() {
    local phys
    phys=$(rec "$1" phys_offset)
    flip "$(segfile "$phys")" $((phys % SEG + $2)) "$3"
}
# Offsets within the record of queue offset $1: its body, and its __CRC32# tail.
body_at() {
    local sf=$(rec "$1" sysflag) # each IPv6 host (sysflag 0x10, 0x20) adds 12 bytes
    echo $((88 + (sf & 16 ? 12 : 0) + (sf & 32 ? 12 : 0)))
}
tail_at() {
    echo $(($(rec "$1" size) - 20))
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 1 >"$T/topic.out" 2>&1
ok $? "topic $TOPIC created with one queue" || diag "$T/topic.out"
"$CTL" send --store "$STORE" $SMALL $TOPIC --count $N --size $SIZE --async 64 \
    >"$T/send.out" 2>"$T/send.err"
ok $? "$N messages of $SIZE bytes sent" || diag "$T/send.err"
stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"

"$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/before.json" 2>"$T/dump.err"
is "$(wc -l <"$T/before.json" | tr -d ' ')" "$N" "the CommitLog holds the $N records" ||
    diag "$T/dump.err"
LAST_PHYS=$(rec $((N - 1)) phys_offset)
CUR=$((LAST_PHYS - LAST_PHYS % SEG)) # the current segment's start
[ "$CUR" -ge $((2 * SEG)) ]
ok $? "the log spans at least three segments (current one at $CUR)"

# Damage in older segments, broker stopped.
Q_RMQ=50 Q_BODY=100 Q_UNIT=250 Q_HDR=400 Q_NAME=700
for q in $Q_RMQ $Q_BODY $Q_UNIT $Q_HDR $Q_NAME; do
    [ "$(rec $q phys_offset)" -lt "$CUR" ] || echo "# record $q is not in an older segment"
done
flip_rec $Q_BODY $(($(body_at $Q_BODY) + 500)) 8 # a body bit
flip_rec $Q_HDR 47 1                             # the born time's last byte
flip_rec $Q_NAME $(($(tail_at $Q_NAME) + 3)) 2   # "__CRC32#" -> "__CAC32#"
# The unit's size (bytes 8..11, big-endian) one off: it points at the right
# record, which is not the size it says.  Its file is older than the ones
# recovery looks at (300 units a file here).
flip "$STORE/consumequeue/$TOPIC/0/00000000000000000000" $((Q_UNIT * 20 + 11)) 1
# As RocketMQ writes by default: the properties end with another property, same size.
phys=$(rec $Q_RMQ phys_offset)
perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, $ARGV[1], 0);
    print $f "CLUSTER\x01DefaultClus\x02"; close $f or die' \
    "$(segfile "$phys")" $((phys % SEG + $(tail_at $Q_RMQ)))
# Such a record is RocketMQ's only in a store RocketMQ wrote before shmq: there the
# checkpoint holds no record-CRC marker (formats.md), which shmq then sets at the log's
# end.  With the marker shmq wrote, a record without __CRC32# is damage (unit tests).
perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, 64, 0);
    print $f "\0" x 24; close $f or die' "$STORE/checkpoint"

start_broker
ok $? "shmqd starts normally with damaged records in older segments" || diag "$T/shmqd.log"
grep -q "the checkpoint holds no record-CRC marker" "$T/shmqd.log"
ok $? "it says the checkpoint had no record-CRC marker" || diag "$T/shmqd.log"

# Damage in the current segment, broker running (what its consumers map).
Q_CBODY=$((N - 30)) Q_CHDR=$((N - 20)) Q_CNAME=$((N - 10))
for q in $Q_CBODY $Q_CHDR $Q_CNAME; do
    [ "$(rec $q phys_offset)" -ge "$CUR" ] || echo "# record $q is not in the current segment"
done
flip_rec $Q_CBODY $(($(body_at $Q_CBODY) + 7)) 64
flip_rec $Q_CHDR 16 4                               # FLAG
flip_rec $Q_CNAME $(($(tail_at $Q_CNAME) - 1)) 16   # the 0x02 before "__CRC32#"
BAD="$Q_BODY $Q_UNIT $Q_HDR $Q_NAME $Q_CBODY $Q_CHDR $Q_CNAME"

# ---- consume, skipping each corrupt message ----------------------------------------------
# A group that has no offset starts at 0, which is good: not skipped.
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group G0 --skip-corrupt 0:0 --count 0 \
    >/dev/null 2>"$T/skip-good.err"
is "$?" "1" "--skip-corrupt refuses a good message" || diag "$T/skip-good.err"
grep -q "not corrupt" "$T/skip-good.err"
ok $? "and says it is not corrupt" || diag "$T/skip-good.err"

: >"$T/c1.json"
skips=""
i=0
while [ $i -lt 10 ]; do
    "$CTL" consume --store "$STORE" $SMALL $TOPIC --group G1 --json --timeout 2000 \
        >>"$T/c1.json" 2>"$T/c1.$i.err"
    rc=$?
    [ $rc -eq 0 ] && break
    q=$(sed -n 's/.* --skip-corrupt 0:\([0-9]*\) --count 0$/\1/p' "$T/c1.$i.err")
    if [ -z "$q" ]; then
        ok 1 "consume run $i stops only at a corrupt message" || diag "$T/c1.$i.err"
        break
    fi
    phys=$(rec "$q" phys_offset)
    grep -q "corrupt message $TOPIC/0 queue offset $q: CommitLog file $(segfile "$phys") offset $((phys % SEG)):" \
        "$T/c1.$i.err"
    ok $? "consume stops at queue offset $q naming its CommitLog file and offset" ||
        diag "$T/c1.$i.err"
    if [ $i -eq 0 ]; then
        "$CTL" consume --store "$STORE" $SMALL $TOPIC --group G1 --skip-corrupt 0:$((q + 1)) \
            --count 0 >/dev/null 2>"$T/skip-past.err"
        is "$?" "1" "--skip-corrupt refuses a message the group does not stand at" ||
            diag "$T/skip-past.err"
    fi
    "$CTL" consume --store "$STORE" $SMALL $TOPIC --group G1 --skip-corrupt 0:$q --count 0 \
        >/dev/null 2>"$T/skip.$i.err"
    ok $? "--skip-corrupt 0:$q" || diag "$T/skip.$i.err"
    grep -q "^consume: skipped corrupt message $TOPIC/0 queue offset $q for group G1 (offset now $((q + 1))): .*CommitLog file $(segfile "$phys") offset $((phys % SEG))" \
        "$T/skip.$i.err"
    ok $? "the skip prints a line naming the message, file and offset" || diag "$T/skip.$i.err"
    skips="$skips $q"
    i=$((i + 1))
done
is "$rc" "0" "consume reaches the end of the queue"
is "$(echo $skips)" "$(echo $BAD)" "consume stopped at each damaged record, in order, once"

# What G1 received: every other message once, intact (compared with the dump).
perl -MJSON::PP -e '
    my ($before, $got, @bad) = @ARGV; my %bad = map { $_ => 1 } @bad;
    open(my $b, "<", $before) or die; my @want;
    while (<$b>) { my $j = decode_json($_); $want[$j->{queue_offset}] = $j->{body} }
    open(my $g, "<", $got) or die; my (%seen, $err);
    while (<$g>) { my $j = decode_json($_); my $q = $j->{queue_offset};
        $err .= "twice $q\n" if $seen{$q}++; $err .= "damaged $q delivered\n" if $bad{$q};
        $err .= "body of $q differs\n" if $j->{body} ne $want[$q] }
    for my $q (0 .. $#want) { $err .= "missing $q\n" unless $seen{$q} || $bad{$q} }
    print $err // ""; exit($err ? 1 : 0)' "$T/before.json" "$T/c1.json" $BAD >"$T/c1.check"
ok $? "G1 received every good message once with its body intact, and no damaged one" ||
    diag "$T/c1.check"
grep -q "\"queue_offset\":$Q_RMQ," "$T/c1.json"
ok $? "the record without __CRC32# (RocketMQ's default) was delivered"

# ---- check.crcs=false ---------------------------------------------------------------------
# No CRC: the flipped bodies come through; the unit that does not match its
# record still stops the group.
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group G2 --json --no-check --timeout 2000 \
    >"$T/c2.json" 2>"$T/c2.0.err"
is "$?" "1" "--no-check still stops at the unit that does not match its record"
grep -q " --skip-corrupt 0:$Q_UNIT --count 0$" "$T/c2.0.err"
ok $? "at queue offset $Q_UNIT" || diag "$T/c2.0.err"
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group G2 --skip-corrupt 0:$Q_UNIT --count 0 \
    >/dev/null 2>"$T/c2.skip.err"
ok $? "--skip-corrupt 0:$Q_UNIT for G2" || diag "$T/c2.skip.err"
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group G2 --json --no-check --timeout 2000 \
    >>"$T/c2.json" 2>"$T/c2.1.err"
ok $? "--no-check then reads to the end" || diag "$T/c2.1.err"
is "$(wc -l <"$T/c2.json" | tr -d ' ')" "$((N - 1))" "--no-check delivers every message but that one"
perl -MJSON::PP -e '
    my ($before, $got) = @ARGV; open(my $b, "<", $before) or die; my @want;
    while (<$b>) { my $j = decode_json($_); $want[$j->{queue_offset}] = $j->{body} }
    open(my $g, "<", $got) or die; my @diff;
    while (<$g>) { my $j = decode_json($_);
        push @diff, $j->{queue_offset} if $j->{body} ne $want[$j->{queue_offset}] }
    print join(" ", @diff), "\n"' "$T/before.json" "$T/c2.json" >"$T/c2.diff"
is "$(cat "$T/c2.diff")" "$Q_BODY $Q_CBODY" "and with them the two flipped bodies"

stop_broker
done_testing
