#!/bin/sh
# consumerOffset.json as a running store may leave it never keeps the store
# from starting: an offset of -5 in the file and its .bak (a consumer wrote it
# into the shared consumer area, two saves kept it), an offset far above its
# queue's max offset in both files, and a non-integer offset with a good .bak
# value each lose only that queue's offset (the .bak value, else dropped with a
# warning naming group, topic, queue and value), and shmqd starts; the other
# offsets are kept.
# TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init offsets-never-refused

# consume GROUP COUNT: read up to COUNT messages of TopicA as GROUP (from the first offset
# when it has none); the number read is printed.
consume() {
    "$CTL" consume --store "$STORE" $SMALL TopicA --group "$1" --from first --count "$2" --json \
        --timeout 1500 >"$T/c.out" 2>"$T/c.err"
    grep -c '^{' "$T/c.out"
}
warned() {
    grep 'WARN' "$T/shmqd.log" | grep -q -- "$1"
}
# set_offset FILE GROUP QUEUE VALUE: replace one offset of TopicA@GROUP in FILE (JSON text).
set_offset() {
    perl -MJSON::PP -e 'my ($f, $g, $q, $v) = @ARGV; local $/;
        open(my $in, "<", $f) or die "$f: $!"; my $j = JSON::PP->new->decode(<$in>); close $in;
        exists $j->{offsetTable}{"TopicA\@$g"}{$q} or die "no offset of $g queue $q in $f";
        $j->{offsetTable}{"TopicA\@$g"}{$q} = "__V__";
        my $t = JSON::PP->new->canonical->pretty->encode($j); $t =~ s/"__V__"/$v/;
        open(my $out, ">", $f) or die "$f: $!"; print $out $t; close $out or die' "$@"
}

start_broker
ok $? "shmqd starts on a new store" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicA --queues 1 >"$T/topic.out" 2>&1
ok $? "TopicA is created with one queue" || diag "$T/topic.out"
"$CTL" send --store "$STORE" $SMALL TopicA "m" --count 10 >"$T/send.out" 2>&1
ok $? "10 messages are sent" || diag "$T/send.out"
for g in G1 G2 G3; do
    is "$(consume "$g" 4)" "4" "group $g reads 4 messages"
done
is "$(consume G4 10)" "10" "group G4 reads all 10"
stop_broker
ok $? "shmqd stops cleanly and saves the offsets" || diag "$T/shmqd.log"
C="$STORE/config/consumerOffset.json"
cp "$C" "$C.bak"
set_offset "$C" G1 0 -5 && set_offset "$C.bak" G1 0 -5
ok $? "G1: offset -5 in consumerOffset.json and its .bak" || diag "$C"
set_offset "$C" G2 0 999999 && set_offset "$C.bak" G2 0 999999
ok $? "G2: offset 999999 (max offset 10) in both files" || diag "$C"
set_offset "$C" G3 0 '"4"'
ok $? "G3: offset \"4\" (a string) in the file, 4 in its .bak" || diag "$C"

: >"$T/shmqd.log"
start_broker
ok $? "shmqd starts on them" || diag "$T/shmqd.log"
warned "group G1, topic TopicA, queue 0: offset -5 is negative; dropped"
ok $? "warning: G1's offset -5 is dropped" || diag "$T/shmqd.log"
warned "group G2, topic TopicA, queue 0: offset 999999 is above the queue's max offset 10; dropped"
ok $? "warning: G2's offset 999999 is dropped" || diag "$T/shmqd.log"
warned "group G3, topic TopicA, queue 0: offset \"4\" is not an integer; using 4 from .*consumerOffset.json.bak"
ok $? "warning: G3's offset takes the .bak value" || diag "$T/shmqd.log"
is "$(consume G1 20)" "10" "G1 starts where it is told to (first): it reads all 10 again"
is "$(consume G2 20)" "10" "G2 starts where it is told to (first): it skips none"
is "$(consume G3 20)" "6" "G3 continues from its .bak offset: it reads its 6 unread"
is "$(consume G4 20)" "0" "group G4 kept its offset: nothing unread"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(<$f>);
    for my $m (values %{$j->{offsetTable}}) { for (values %$m) { exit 1 if $_ !~ /^\d+$/ } }
    exit 0' "$C"
ok $? "the saved file holds no negative or non-integer offset" || diag "$C"
done_testing
