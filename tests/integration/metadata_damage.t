#!/bin/sh
# Damaged metadata of a stopped store is noticed, by shmqd at start and by
# `shmqctl verify`: a flipped bit in the table key of topics.json or
# consumerOffset.json makes shmqd load the .bak with a warning (or refuse,
# naming the file, when there is no .bak) instead of starting with no topics
# or no offsets; a negative or too large committed offset is replaced from
# .bak with a warning naming file, group, topic and queue, and the start is
# not refused; a topic that has consume queues but no entry is restored; a
# RocketMQ dataVersion survives a save; delayOffset.json and
# subscriptionGroup.json damage is reported; verify names the damaged
# config file, checkpoint field or index file.  Then 40 seeded single-bit
# flips per file kind (META_FLIPS=N to change; `make torture` runs 200): verify's and the loaders'
# detections are counted, and no flip may make a topic, a group, a group's
# offsets or a delay level disappear without a warning.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init metadata-damage
META="$HELPERS/meta_load"
[ -x "$META" ] || { echo "Bail out! $META not built"; exit 1; }
FLIPS=${META_FLIPS:-40}

# flipbit FILE BYTE BIT: XOR bit BIT of byte BYTE.
flipbit() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
        seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short read";
        seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ (1 << $ARGV[2])); close $f or die' "$@"
}
# flipword FILE WORD AT BIT: flip bit BIT of byte AT of the first occurrence of WORD.
flipword() {
    flipbit "$1" "$(perl -e 'local $/; open(my $f, "<", $ARGV[0]) or die; my $t = <$f>;
        my $i = index($t, $ARGV[1]); die "no $ARGV[1] in $ARGV[0]" if $i < 0;
        print $i + $ARGV[2]' "$1" "$2" "$3")" "$4"
}
# verify_store: shmqctl verify of $STORE; output in $T/v.out, its status returned.
verify_store() {
    "$CTL" verify --store "$STORE" $SMALL >"$T/v.out" 2>&1
}
# fresh NAME: $STORE becomes a new copy of the intact store; the log starts empty.
fresh() {
    STORE="$T/$1"
    rm -rf "$STORE"
    cp -a "$T/pristine" "$STORE"
    : >"$T/shmqd.log"
}
# start_refused: shmqd must exit on its own (bounded); its status is returned.
start_refused() {
    "$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
    wait_pid $! 200
}
# warned PATTERN: a WARN line of the log matches.
warned() {
    grep 'WARN' "$T/shmqd.log" | grep -q -- "$1"
}
# topic_names: sorted topic names of a running store.
topic_names() {
    "$CTL" topic --store "$STORE" $SMALL list --json |
        perl -MJSON::PP -ne 'print JSON::PP->new->decode($_)->{topic}, " "'
}
# G1 reads exactly its 10 unread messages of TopicA (queues 0-2 are consumed, queue 3 has no
# offset yet): with its offsets lost it would read all 40, with one too high fewer than 10.
reads_unread() {
    "$CTL" consume --store "$STORE" $SMALL TopicA --group G1 --from first --count 40 --json \
        --timeout 2000 >"$T/c.out" 2>"$T/c.err"
    [ "$(grep -c '^{' "$T/c.out")" = 10 ]
}

# ---- a store with every kind of metadata ------------------------------------------------
mkdir -p "$STORE/config"
# subscriptionGroup.json as RocketMQ writes it (fastjson: tabs), with its .bak.
cat >"$STORE/config/subscriptionGroup.json" <<'JSON'
{
	"dataVersion":{
		"counter":2,
		"stateVersion":0,
		"timestamp":1700000000000
	},
	"forbiddenTable":{},
	"subscriptionGroupTable":{
		"G1":{
			"brokerId":0,
			"consumeBroadcastEnable":true,
			"consumeEnable":true,
			"consumeFromMinEnable":true,
			"consumeMessageOrderly":false,
			"groupName":"G1",
			"retryMaxTimes":5,
			"retryQueueNums":1,
			"whichBrokerWhenConsumeSlowly":1
		},
		"G2":{
			"brokerId":0,
			"consumeBroadcastEnable":true,
			"consumeEnable":true,
			"consumeFromMinEnable":true,
			"consumeMessageOrderly":false,
			"groupName":"G2",
			"retryMaxTimes":3,
			"retryQueueNums":1,
			"whichBrokerWhenConsumeSlowly":1
		}
	}
}
JSON
cp "$STORE/config/subscriptionGroup.json" "$STORE/config/subscriptionGroup.json.bak"
start_broker
ok $? "shmqd starts on a new store" || diag "$T/shmqd.log"
"$CTL" send --store "$STORE" $SMALL TopicA --count 40 --size 100 --keys k1 >"$T/s.out" 2>&1 &&
    "$CTL" send --store "$STORE" $SMALL TopicB --count 20 --size 100 >>"$T/s.out" 2>&1 &&
    "$CTL" send --store "$STORE" $SMALL TopicB --delay-level 1 late >>"$T/s.out" 2>&1
ok $? "messages sent to TopicA, TopicB and a delay level" || diag "$T/s.out"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G1 --count 30 >"$T/c.out" 2>&1 &&
    "$CTL" consume --store "$STORE" $SMALL TopicA --group G2 --count 3 --fail >>"$T/c.out" 2>&1 &&
    "$CTL" consume --store "$STORE" $SMALL TopicB --group G3 --count 21 --timeout 5000 \
        >>"$T/c.out" 2>&1
ok $? "groups G1, G2 (sending 3 back) and G3 consume and commit" || diag "$T/c.out"
stop_broker
ok $? "clean stop" || diag "$T/shmqd.log"
# A second run: every file has been saved at least twice.
start_broker && stop_broker
ok $? "second run" || diag "$T/shmqd.log"
for f in topics.json consumerOffset.json delayOffset.json; do
    [ -s "$STORE/config/$f" ] && [ -s "$STORE/config/$f.bak" ]
    ok $? "$f and its .bak exist"
done
cp -a "$STORE" "$T/pristine"
verify_store
ok $? "verify passes on the intact store" || diag "$T/v.out"
"$META" "$T/pristine" 2>"$T/pristine.warn" | sort >"$T/pristine.tables"
is "$(grep -c '^topic \|^offset \|^delay \|^group ' "$T/pristine.tables")" \
    "$(grep -c . "$T/pristine.tables")" "the intact store's tables load"
is "$(grep -c . "$T/pristine.warn")" "0" "without a warning" || diag "$T/pristine.warn"
grep -q '^topic %RETRY%G2 ' "$T/pristine.tables" && grep -q '^delay 3 ' "$T/pristine.tables" &&
    grep -q '^offset TopicB@G3 ' "$T/pristine.tables" && grep -q '^group G2 3 1' "$T/pristine.tables"
ok $? "topics, offsets, delay levels and groups are all there" || diag "$T/pristine.tables"

# ---- topics.json: damaged table key ----------------------------------------------------
fresh topics-key
flipword "$STORE/config/topics.json" topicConfigTable 0 1
verify_store
is "$?" "1" "verify fails on a flipped bit in \"topicConfigTable\""
grep -q "problem: $STORE/config/topics.json is damaged (no \"topicConfigTable\" table" "$T/v.out"
ok $? "and names topics.json" || diag "$T/v.out"
start_broker
ok $? "shmqd starts on it" || diag "$T/shmqd.log"
warned "$STORE/config/topics.json is damaged .*loading $STORE/config/topics.json.bak"
ok $? "warning: topics.json is damaged, its .bak is loaded" || diag "$T/shmqd.log"
is "$(topic_names)" "%RETRY%G2 SCHEDULE_TOPIC_XXXX TopicA TopicB " "every topic is there"
reads_unread
ok $? "G1 reads its 10 unread messages" || diag "$T/c.err"
stop_broker
verify_store
ok $? "after a run topics.json is whole again: verify passes" || diag "$T/v.out"

fresh topics-key-nobak
flipword "$STORE/config/topics.json" topicConfigTable 0 1
rm "$STORE/config/topics.json.bak"
verify_store
is "$?" "1" "verify fails when topics.json is damaged and has no .bak"
grep -q "topics.json.bak is missing: .* (shmqd does not start)" "$T/v.out"
ok $? "and says that shmqd does not start" || diag "$T/v.out"
start_refused
is "$?" "1" "shmqd refuses to start (exit 1)"
grep 'ERROR' "$T/shmqd.log" | grep -q "cannot open the store at .*$STORE/config/topics.json is damaged"
ok $? "naming topics.json" || diag "$T/shmqd.log"

# ---- topics.json: a topic missing, its consume queues on disk ---------------------------
fresh topics-missing
for f in topics.json topics.json.bak; do
    perl -MJSON::PP -i -0777 -pe '$j = JSON::PP->new->decode($_);
        delete $j->{topicConfigTable}{TopicB}; $_ = JSON::PP->new->pretty->encode($j)' \
        "$STORE/config/$f"
done
verify_store
is "$?" "1" "verify fails when a topic with consume queues has no entry"
grep -q "topic \"TopicB\" has consume queues" "$T/v.out"
ok $? "and names the topic" || diag "$T/v.out"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
warned "topic \"TopicB\" has consume queues .* restored with 4 read and write queues"
ok $? "warning: TopicB restored with one queue per directory" || diag "$T/shmqd.log"
"$CTL" consume --store "$STORE" $SMALL TopicB --group G4 --count 21 --timeout 3000 >"$T/c.out" 2>&1
ok $? "TopicB's 21 messages are reachable" || diag "$T/c.out"
stop_broker

# ---- consumerOffset.json -------------------------------------------------------------
fresh offsets-key
flipword "$STORE/config/consumerOffset.json" offsetTable 0 0
verify_store
is "$?" "1" "verify fails on a flipped bit in \"offsetTable\""
grep -q "problem: $STORE/config/consumerOffset.json is damaged" "$T/v.out"
ok $? "and names consumerOffset.json" || diag "$T/v.out"
start_broker
ok $? "shmqd starts on it" || diag "$T/shmqd.log"
warned "consumerOffset.json is damaged .*loading .*consumerOffset.json.bak"
ok $? "warning: consumerOffset.json is damaged, its .bak is loaded" || diag "$T/shmqd.log"
reads_unread
ok $? "G1 kept its offsets: it reads its 10 unread messages" || diag "$T/c.err"
stop_broker

fresh offsets-key-nobak
flipword "$STORE/config/consumerOffset.json" offsetTable 0 0
rm "$STORE/config/consumerOffset.json.bak"
start_refused
is "$?" "1" "with no .bak shmqd refuses to start"
grep 'ERROR' "$T/shmqd.log" | grep -q "consumerOffset.json is damaged"
ok $? "naming consumerOffset.json" || diag "$T/shmqd.log"

fresh offsets-negative
perl -0777 -i -pe 's/("TopicA\@G1": \{\s*"0": )\d+/${1}-5/s' "$STORE/config/consumerOffset.json"
grep -q '"0": -5' "$STORE/config/consumerOffset.json"
ok $? "queue 0 of G1 set to -5"
start_broker
ok $? "an offset of -5 does not refuse the start" || diag "$T/shmqd.log"
warned "consumerOffset.json: group G1, topic TopicA, queue 0: offset -5 is negative; using [0-9]* from .*consumerOffset.json.bak"
ok $? "warning names file, group, topic and queue, and the .bak value used" || diag "$T/shmqd.log"
reads_unread
ok $? "G1 reads its 10 unread messages" || diag "$T/c.err"
stop_broker
perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(<$f>);
    exit($j->{offsetTable}{"TopicA\@G1"}{0} >= 0 ? 0 : 1)' "$STORE/config/consumerOffset.json"
ok $? "the repaired offset is saved" || diag "$STORE/config/consumerOffset.json"

fresh offsets-high
perl -0777 -i -pe 's/("TopicA\@G1": \{\s*"0": )(\d+)/$1 . ($2 + 900)/se' "$STORE/config/consumerOffset.json"
verify_store
is "$?" "1" "verify fails on an offset above its queue's max"
grep -q "group G1, topic TopicA, queue 0: offset [0-9]* is above the queue's max offset 10" "$T/v.out"
ok $? "and names it" || diag "$T/v.out"
start_broker
warned "group G1, topic TopicA, queue 0: offset [0-9]* is above the queue's max offset 10; using"
ok $? "shmqd lowers it with a warning" || diag "$T/shmqd.log"
reads_unread
ok $? "G1 skips none of its 10 unread messages" || diag "$T/c.err"
stop_broker

fresh offsets-rocketmq
printf '{\n\t"dataVersion":{\n\t\t"counter":41,\n\t\t"stateVersion":3,\n\t\t"timestamp":1700000000000\n\t},\n\t"offsetTable":{\n\t\t"TopicA@G1":{0:8,1:7,2:8,3:7}\n\t}\n}\n' \
    >"$STORE/config/consumerOffset.json"
cp "$STORE/config/consumerOffset.json" "$STORE/config/consumerOffset.json.bak"
start_broker
ok $? "shmqd starts on a consumerOffset.json written by RocketMQ" || diag "$T/shmqd.log"
reads_unread
ok $? "G1 continues from its RocketMQ offsets" || diag "$T/c.err"
stop_broker
perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(<$f>);
    my $d = $j->{dataVersion}; exit($d && $d->{counter} > 41 && $d->{stateVersion} == 3 ? 0 : 1)' \
    "$STORE/config/consumerOffset.json"
ok $? "the rewritten file keeps its dataVersion (counter continues, stateVersion kept)" ||
    diag "$STORE/config/consumerOffset.json"

# ---- delayOffset.json, subscriptionGroup.json -----------------------------------------
fresh delay-key
flipword "$STORE/config/delayOffset.json" offsetTable 0 5
verify_store
is "$?" "1" "verify fails on a flipped bit in delayOffset.json's table key"
grep -q "problem: $STORE/config/delayOffset.json is damaged" "$T/v.out"
ok $? "and names delayOffset.json" || diag "$T/v.out"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
i=0
while ! warned "delayOffset.json is damaged .*loading" && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep 'WARN' "$T/shmqd.log" | grep -q "scheduler.*delayOffset.json is damaged .*loading .*delayOffset.json.bak"
ok $? "the scheduler warns and loads the .bak" || diag "$T/shmqd.log"
stop_broker

fresh groups
# "G1" -> "G3" in G1's groupName; no .bak, and G1 has no retry topic: neither name is known.
flipword "$STORE/config/subscriptionGroup.json" '"groupName":"G1"' 14 1
rm "$STORE/config/subscriptionGroup.json.bak"
verify_store
is "$?" "1" "verify fails on a flipped bit in a groupName"
grep -q "subscriptionGroup.json: group \"G1\": its key and groupName \"G3\" differ" "$T/v.out"
ok $? "and names the file and the group" || diag "$T/v.out"
start_broker
ok $? "shmqd starts (it does not use subscriptionGroup.json itself)" || diag "$T/shmqd.log"
warned "subscriptionGroup.json: group \"G1\": .*dropped: the group gets the default settings"
ok $? "and warns that the group gets the defaults" || diag "$T/shmqd.log"
stop_broker

# ---- checkpoint and index files -------------------------------------------------------
fresh checkpoint
end=$(perl -e 'open(my $f, "<", $ARGV[0]) or die; binmode $f; seek($f, 32, 0); read($f, my $b, 8);
    print unpack("q>", $b)' "$STORE/checkpoint")
flipbit "$STORE/checkpoint" 35 4
verify_store
is "$?" "1" "verify fails when confirmPhyOffset is beyond the end of the log"
grep -q "problem: $STORE/checkpoint: confirmPhyOffset $((end + 68719476736)) is outside the log" "$T/v.out"
ok $? "and names the checkpoint and the field" || diag "$T/v.out"
# Recovery's to handle: it either refuses naming the checkpoint, or does not believe it and
# says so; never silently.
"$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
started=0
wait_state running 300 && wait_workers 300 && started=1
grep -E 'WARN|ERROR' "$T/shmqd.log" | grep -q "checkpoint"
ok $? "shmqd's log names the damaged checkpoint (started: $started)" || diag "$T/shmqd.log"
if [ "$started" = 1 ]; then
    stop_broker
    verify_store
    ok $? "after the run the checkpoint is whole again: verify passes" || diag "$T/v.out"
else
    wait_pid "$SHMQD_PID" 200
    is "$?" "1" "shmqd refused to start (exit 1)"
    SHMQD_PID=""
fi

fresh checkpoint-ts
flipbit "$STORE/checkpoint" 7 0
flipbit "$STORE/checkpoint" 2000 3
verify_store
is "$?" "1" "verify fails on a flipped bit in physicMsgTimestamp and in the unused part"
grep -q "physicMsgTimestamp [0-9]* is not the store time" "$T/v.out" &&
    grep -q "checkpoint offset 2000: non-zero byte" "$T/v.out"
ok $? "and names both" || diag "$T/v.out"

fresh index
ix=$(ls "$STORE/index" | head -n 1)
# hashSlotCount (bytes 32-35) and a byte of the first entry's keyHash.
flipbit "$STORE/index/$ix" 35 1
flipbit "$STORE/index/$ix" $((40 + 4 * 4096 + 20 + 3)) 2
verify_store
is "$?" "1" "verify fails on flipped bits in an index file"
grep -q "index file $STORE/index/$ix: hashSlotCount" "$T/v.out" &&
    grep -q "index file $STORE/index/$ix: entry 1 (offset $((40 + 4 * 4096 + 20))): keyHash .* is not a key" "$T/v.out"
ok $? "and names the file, the header field and the entry" || diag "$T/v.out"
start_broker
ok $? "shmqd starts on it (index files are not read at start)" || diag "$T/shmqd.log"
stop_broker

# ---- seeded single-bit flips -------------------------------------------------------------
# For each kind, FLIPS flips at seeded random places (JSON: anywhere in the file;
# checkpoint: its five fields; index: header, slots and the entries in use).  Each one:
# does verify name the file (exit 1)?  Do the loaders warn or refuse?  Does an entry of
# the intact tables vanish, or a value change, without a warning?
STORE="$T/flips"
rm -rf "$STORE"
cp -a "$T/pristine" "$STORE"
ix=$(ls "$STORE/index" | head -n 1)
perl -e '
    use strict; use warnings;
    my ($ctl, $meta, $store, $pristine, $t, $n, $ix, @small) = @ARGV;
    my %want = map { $_ => 1 } do { open(my $f, "<", "$t/pristine.tables") or die; <$f> };
    my %kinds = ("topics.json" => "config/topics.json", "consumerOffset.json" => "config/consumerOffset.json",
        "subscriptionGroup.json" => "config/subscriptionGroup.json",
        "delayOffset.json" => "config/delayOffset.json", "checkpoint" => "checkpoint", "index" => "index/$ix");
    my $seed = 1;
    for my $kind (sort keys %kinds) {
        my $rel = $kinds{$kind};
        my $path = "$store/$rel";
        my $orig = do { open(my $o, "<", "$pristine/$rel") or die; binmode $o; local $/; <$o> };
        my $span = length $orig;
        $span = 40 if $kind eq "checkpoint";
        if ($kind eq "index") {
            my $count = unpack("N", substr($orig, 36, 4));
            $span = 40 + 4 * 4096 + 20 * $count;
        }
        srand($seed++);
        my %c = (flips => 0, verify => 0, load => 0, refused => 0, loss => 0, changed => 0, crash => 0);
        my (@loss, @missed);
        for (1 .. $n) {
            my ($byte, $bit) = (int(rand($span)), int(rand(8)));
            my $d = $orig;
            substr($d, $byte, 1) = chr(ord(substr($d, $byte, 1)) ^ (1 << $bit));
            open(my $w, ">", $path) or die; binmode $w; print $w $d; close $w;
            $c{flips}++;
            my $name = $kind eq "index" ? $ix : $kind;
            my $vout = `$ctl verify --store $store @small 2>&1`;
            my $vs = $? >> 8;
            $c{crash}++ if $? & 127 or $vs > 1;
            my $vseen = $vs == 1 && $vout =~ /\Q$name\E/;
            $c{verify}++ if $vseen;
            my $ctx = substr($orig, $byte < 12 ? 0 : $byte - 12, 24);
            $ctx =~ s/([^\x20-\x7e])/sprintf("\\x%02x", ord($1))/ge;
            push @missed, "byte $byte bit $bit in \"$ctx\"" unless $vseen;
            next if $kind eq "checkpoint" || $kind eq "index";
            my @got = `$meta $store 2>$t/flip.warn`;
            open(my $wf, "<", "$t/flip.warn") or die; my @warn = <$wf>; close $wf;
            my $warned = grep { /\Q$kind\E/ } @warn;
            my %got = map { $_ => 1 } @got;
            my $refused = grep { /^refused \Q$kind\E/ } @got;
            $c{refused}++ if $refused;
            $c{load}++ if $warned || $refused;
            # Entities of the intact tables (a topic, a queue offset, a level, a group) gone?
            my %have = map { my @f = split; ("$f[0] $f[1]" . ($f[0] eq "offset" ? " $f[2]" : "") => 1) } @got;
            my @gone = grep { my @f = split; !$have{"$f[0] $f[1]" . ($f[0] eq "offset" ? " $f[2]" : "")} } keys %want;
            if (@gone && !$warned && !$refused) {
                $c{loss}++;
                push @loss, "byte $byte bit $bit: " . join(", ", map { chomp; $_ } @gone);
            } elsif (!$warned && !$refused && (grep { !$got{$_} } keys %want)) {
                $c{changed}++;
            }
        }
        open(my $w, ">", $path) or die; binmode $w; print $w $orig; close $w;
        print join(" ", "FIGURES", $kind, map { "$_=$c{$_}" } qw(flips verify load refused loss changed crash)), "\n";
        print "LOSS $kind $_\n" for @loss;
        print "UNSEEN $kind $_\n" for @missed;
    }
' "$CTL" "$META" "$STORE" "$T/pristine" "$T" "$FLIPS" "$ix" $SMALL >"$T/flips.out" 2>&1
ok $? "the flip loop ran" || diag "$T/flips.out"
sed -n 's/^FIGURES /# /p; s/^UNSEEN /# not seen by verify: /p' "$T/flips.out"
for kind in topics.json consumerOffset.json subscriptionGroup.json delayOffset.json checkpoint index; do
    line=$(grep "^FIGURES $kind " "$T/flips.out")
    is "$(echo "$line" | sed 's/.* flips=\([0-9]*\).*/\1/')" "$FLIPS" "$kind: $FLIPS flips done"
    is "$(echo "$line" | sed 's/.* crash=\([0-9]*\).*/\1/')" "0" "$kind: verify never crashed"
done
for kind in topics.json consumerOffset.json subscriptionGroup.json delayOffset.json; do
    is "$(grep "^FIGURES $kind " "$T/flips.out" | sed 's/.* loss=\([0-9]*\).*/\1/')" "0" \
        "$kind: no flip makes an entry disappear without a warning" || grep "^LOSS $kind" "$T/flips.out"
    line=$(grep "^FIGURES $kind " "$T/flips.out")
    v=$(echo "$line" | sed 's/.* verify=\([0-9]*\).*/\1/')
    l=$(echo "$line" | sed 's/.* load=\([0-9]*\).*/\1/')
    [ "$v" -ge "$l" ]
    ok $? "$kind: verify reports every flip the loaders report ($v >= $l)"
done
STORE="$T/pristine"
done_testing
