#!/bin/sh
# shmqctl's offline commands on a temporary store with small segments:
# gen writes a store that verify accepts and dump shows record by record;
# a torn last record, a flipped bit, a damaged CRC property and lost
# ConsumeQueue files are found by verify (naming file and offset) and
# repaired by recover; a damaged topics.json or checkpoint is named by
# verify; gen refuses a store another process holds, and leaves a clean
# store when interrupted.
# TAP output; exits non-zero if any test fails.

BUILD=${SHMQ_BUILD:-/work/main/build}
CTL="$BUILD/shmqctl"
if [ ! -x "$CTL" ]; then
    echo "Bail out! $CTL not built"
    exit 1
fi
T=$(mktemp -d /tmp/shmqctl-offline.XXXXXX) || exit 1
BGPID=""
cleanup() {
    if [ -n "$BGPID" ]; then
        kill -TERM "$BGPID" 2>/dev/null
        kill -CONT "$BGPID" 2>/dev/null
        wait "$BGPID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "${SHMQ_SRC:-$(dirname "$0")/../..}/tests/helpers/tap.sh"
# JSON field $1 of each JSON line on stdin (one value per line).
jfield() {
    perl -MJSON::PP -e 'my $k = shift; while (my $l = <STDIN>) {
        my $v = JSON::PP->new->decode($l)->{$k}; $v = $v ? 1 : 0 if JSON::PP::is_bool($v);
        print defined $v ? $v : "null", "\n" }' "$1"
}
# Segment file of CommitLog offset $2 in store $1 (64 KiB segments).
segfile() {
    printf '%s/commitlog/%020d' "$1" $(($2 - $2 % 65536))
}
# zero_at FILE OFFSET COUNT: COUNT zero bytes written at OFFSET of FILE.
zero_at() {
    dd if=/dev/zero of="$1" bs=1 seek="$2" count="$3" conv=notrunc 2>/dev/null
}
# XOR byte $2 of file $1 with 0x10.
flipbit() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; binmode $f;
        seek($f, $ARGV[1], 0); read($f, my $b, 1) == 1 or die "short read";
        seek($f, $ARGV[1], 0); print $f chr(ord($b) ^ 0x10); close $f or die' "$1" "$2"
}

SMALL="--set mappedFileSizeCommitLog=65536 --set mappedFileSizeConsumeQueue=2000 --set maxMessageSize=8192"
N=1000
S0="$T/orig"

# ---- gen, verify, dump ---------------------------------------------------------
"$CTL" gen --store "$S0" $SMALL --topic TopicA --count $N --size 100 --tags TagA --keys \
    >"$T/gen.out" 2>"$T/gen.err"
ok $? "gen writes $N messages into a new store"
grep -q "wrote $N messages" "$T/gen.out"
ok $? "gen's summary counts the messages written"
nseg=$(ls "$S0/commitlog" | wc -l)
[ "$nseg" -ge 4 ]
ok $? "the CommitLog spans several segments ($nseg)"

"$CTL" verify --store "$S0" $SMALL >"$T/v.out" 2>&1
ok $? "verify accepts the generated store"
grep -q "verify: OK: $N records" "$T/v.out" || diag "$T/v.out"

"$CTL" dump --store "$S0" $SMALL commitlog >"$T/dump.txt"
ok $? "dump commitlog succeeds"
# The store's own files give the sizes the command line leaves out.
"$CTL" verify --store "$S0" >"$T/v-nosizes.out" 2>&1
ok $? "verify reads a store made with small segments without being told their sizes" ||
    diag "$T/v-nosizes.out"
"$CTL" dump --store "$S0" commitlog >"$T/dump-nosizes.txt" 2>&1
cmp -s "$T/dump.txt" "$T/dump-nosizes.txt"
ok $? "dump without the sizes prints the same records" || diag "$T/dump-nosizes.txt"
# A maxMessageSize that does not fit a segment is capped, with a warning, not refused.
"$BUILD/shmqd" --store "$S0" --set mappedFileSizeCommitLog=65536 --print-config >"$T/cap.out" 2>"$T/cap.err"
ok $? "shmqd accepts the default maxMessageSize with 64 KiB segments" || diag "$T/cap.err"
cap=$(sed -n 's/^maxMessageSize=//p' "$T/cap.out")
[ -n "$cap" ] && [ "$cap" -lt 65536 ] && grep -q "maxMessageSize 4194304 does not fit .* capped to $cap" "$T/cap.err"
ok $? "maxMessageSize is capped to what fits ($cap) with a warning" || diag "$T/cap.err"
"$BUILD/shmqd" --store "$S0" --set mappedFileSizeCommitLog=4096 --set maxTopicLength=255 --print-config \
    >"$T/cap2.out" 2>"$T/cap2.err"
is "$?" "2" "a segment too small for any record is still refused"
is "$(wc -l <"$T/dump.txt" | tr -d ' ')" "$N" "dump commitlog shows exactly $N records"
is "$(sed -n 's/.* qid=\([0-9]*\) .*/\1/p' "$T/dump.txt" | sort | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ')" \
    "0:250 1:250 2:250 3:250 " "records are spread round-robin over 4 queues"

"$CTL" dump --store "$S0" $SMALL commitlog --json >"$T/dump.json"
ok $? "dump commitlog --json succeeds"
perl -MJSON::PP -e 'my $n = 0; while (<STDIN>) { JSON::PP->new->decode($_); $n++ }
    exit($n == shift ? 0 : 1)' $N <"$T/dump.json"
ok $? "every JSON line parses ($N lines)"
is "$(jfield tags <"$T/dump.json" | sort -u)" "TagA" "every record carries the TAGS given"
jfield keys <"$T/dump.json" | sort >"$T/keys"
perl -e 'print "key-$_\n" for 0 .. $ARGV[0] - 1' $N | sort >"$T/keys.want"
cmp -s "$T/keys" "$T/keys.want"
ok $? "KEYS are key-0 .. key-$((N - 1))"
is "$(jfield uniq_key <"$T/dump.json" | grep -c '^[0-9A-F]\{32\}$')" "$N" "every record has a UNIQ_KEY"
is "$(jfield uniq_key <"$T/dump.json" | sort -u | wc -l | tr -d ' ')" "$N" "UNIQ_KEYs are unique"
is "$(jfield body <"$T/dump.json" | sort -u | wc -l | tr -d ' ')" "$N" "bodies differ"
is "$(jfield body_len <"$T/dump.json" | sort -u)" "100" "bodies are --size bytes"
perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_);
    exit 1 unless $j->{magic} eq "V1" && $j->{topic} eq "TopicA" && $j->{properties}{TAGS} eq "TagA"
        && $j->{msg_id} =~ /^[0-9A-F]{32}$/ && $j->{store_host} =~ /^\d+\.\d+\.\d+\.\d+:\d+$/
        && $j->{body_encoding} eq "text" && $j->{queue_offset} == int(($. - 1) / 4);' "$T/dump.json"
ok $? "JSON records carry magic, topic, properties, ids, hosts and queue offsets"

p10=$(sed -n 11p "$T/dump.json" | jfield phys_offset)
"$CTL" dump --store "$S0" $SMALL commitlog --from "$p10" --count 5 --json >"$T/part.json"
is "$(jfield phys_offset <"$T/part.json" | tr '\n' ' ')" \
    "$(sed -n 11,15p "$T/dump.json" | jfield phys_offset | tr '\n' ' ')" "dump --from --count"

"$CTL" dump --store "$S0" $SMALL consumequeue TopicA 2 >"$T/cq.txt"
ok $? "dump consumequeue succeeds"
is "$(grep -c 'match=yes' "$T/cq.txt")" "250" "queue 2 has 250 units, all matching their records"
"$CTL" dump --store "$S0" $SMALL consumequeue TopicA 2 --json --from 100 --count 3 >"$T/cq.json"
is "$(jfield queue_offset <"$T/cq.json" | tr '\n' ' ')" "100 101 102 " "dump consumequeue --from --count"
is "$(jfield match <"$T/cq.json" | sort -u)" "1" "consumequeue JSON reports the match"
"$CTL" dump --store "$S0" $SMALL consumequeue NoSuchTopic 0 >/dev/null 2>&1
is "$?" "1" "dump of a missing consume queue fails"

# ---- torn tail ---------------------------------------------------------------------
S1="$T/torn"
cp -a "$S0" "$S1"
last=$(tail -n 1 "$T/dump.json")
lphys=$(echo "$last" | jfield phys_offset)
lsize=$(echo "$last" | jfield size)
lfile=$(segfile "$S1" "$lphys")
lrel=$((lphys % 65536))
K=100
zero_at "$lfile" $((lrel + lsize - K)) $K
is "$(wc -c <"$lfile" | tr -d ' ')" "65536" "zeroing the tail keeps the segment's size"

"$CTL" verify --store "$S1" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails on a torn last record"
grep -q "file $lfile offset $lrel:" "$T/v.out"
ok $? "verify names the torn record's file and offset" || diag "$T/v.out"
"$CTL" dump --store "$S1" $SMALL commitlog >/dev/null 2>"$T/d.err"
is "$?" "1" "dump stops with an error at the torn record"
grep -q "offset $lphys" "$T/d.err"
ok $? "dump names the torn record's offset"

"$CTL" recover --store "$S1" $SMALL >"$T/r.out" 2>&1
is "$?" "1" "recover refuses to cut a damaged last record below the checkpoint"
grep -q "below the checkpoint.*file $lfile offset $lrel" "$T/r.out"
ok $? "the refusal names the record's file and offset" || diag "$T/r.out"
"$CTL" recover --store "$S1" $SMALL --force >"$T/r.out" 2>&1
ok $? "recover --force cuts the damaged last record" || diag "$T/r.out"
grep -q "^below checkpoint: yes" "$T/r.out"
ok $? "recover says the cut record had been flushed" || diag "$T/r.out"
grep -q "^truncated: $((lsize - K)) bytes at file $lfile offset $lrel$" "$T/r.out"
ok $? "recover reports the bytes truncated and where" || diag "$T/r.out"
"$CTL" recover --store "$S1" $SMALL --json >"$T/r.json" 2>&1
ok $? "recover on a clean store succeeds"
is "$(jfield truncated_bytes <"$T/r.json")" "0" "recover --json: nothing left to cut"

# A mistyped path is refused, and nothing is made there.
"$CTL" recover --store "$T/no-such-store" $SMALL >"$T/r.out" 2>&1
is "$?" "1" "recover on a path that does not exist fails"
[ ! -e "$T/no-such-store" ] && grep -q "no store at $T/no-such-store" "$T/r.out"
ok $? "it says there is no store and creates nothing" || diag "$T/r.out"
mkdir "$T/empty-dir"
"$CTL" recover --store "$T/empty-dir" $SMALL >"$T/r.out" 2>&1
is "$?" "1" "recover on an empty directory fails"
[ -z "$(ls -A "$T/empty-dir")" ] && grep -q "no store at $T/empty-dir" "$T/r.out"
ok $? "it names the directory and leaves it empty" || diag "$T/r.out"

"$CTL" verify --store "$S1" $SMALL >"$T/v.out" 2>&1
ok $? "verify passes after recover" || diag "$T/v.out"
"$CTL" dump --store "$S1" $SMALL commitlog --json >"$T/dump1.json"
is "$(wc -l <"$T/dump1.json" | tr -d ' ')" "$((N - 1))" "dump shows $((N - 1)) records after recover"
jfield phys_offset <"$T/dump1.json" | grep -qx "$lphys"
is "$?" "1" "the torn record is gone"
head -n $((N - 1)) "$T/dump.json" | cmp -s - "$T/dump1.json"
ok $? "the other records are intact"

# ---- corruption in the middle of the log ---------------------------------------------
S2="$T/flip"
cp -a "$S0" "$S2"
mline=$(sed -n $((N / 2 + 1))p "$T/dump.json")
mphys=$(echo "$mline" | jfield phys_offset)
mfile=$(segfile "$S2" "$mphys")
flipbit "$mfile" $((mphys % 65536 + 100))
"$CTL" verify --store "$S2" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails on a flipped bit in a body"
grep "file $mfile offset $((mphys % 65536)):" "$T/v.out" | grep -q "body CRC"
ok $? "verify names the file and offset of the body CRC mismatch" || diag "$T/v.out"
is "$(grep -c '^problem:' "$T/v.out")" "1" "and reports nothing else"

"$CTL" dump --store "$S2" $SMALL commitlog --no-check >"$T/d.out" 2>&1
is "$(wc -l <"$T/d.out" | tr -d ' ')" "$N" "dump --no-check still shows every record"

S7="$T/binary"
cp -a "$S0" "$S7"
# Body bytes start 88 bytes into a record with IPv4 hosts.
perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, $ARGV[1], 0);
    print $f "\x01"; close $f or die' "$(segfile "$S7" "$mphys")" $((mphys % 65536 + 88 + 5))
"$CTL" dump --store "$S7" $SMALL commitlog --no-check --json --from "$mphys" --count 1 >"$T/b.json"
echo "$mline" | perl -MJSON::PP -MMIME::Base64 -e 'my $orig = JSON::PP->new->decode(scalar <STDIN>);
    open(my $f, "<", $ARGV[0]) or die; my $j = JSON::PP->new->decode(scalar <$f>);
    my $want = $orig->{body}; substr($want, 5, 1) = "\x01";
    exit($j->{body_encoding} eq "base64" && decode_base64($j->{body}) eq $want ? 0 : 1)' "$T/b.json"
ok $? "a body with a control character is dumped as base64"

S3="$T/crcprop"
cp -a "$S0" "$S3"
lfile3=$(segfile "$S3" "$lphys")
zero_at "$lfile3" $((lrel + lsize - 10)) 10
"$CTL" verify --store "$S3" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails when the end of a record (its __CRC32# property) is zeroed"
grep -q "file $lfile3 offset $lrel: .*__CRC32#" "$T/v.out"
ok $? "verify names the record with the damaged CRC property" || diag "$T/v.out"

S4="$T/garbage"
cp -a "$S0" "$S4"
endoff=$(($(echo "$last" | jfield phys_offset) + lsize))
flipbit "$(segfile "$S4" "$endoff")" $((endoff % 65536 + 40))
"$CTL" verify --store "$S4" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails on a non-zero byte after the end of the log"
grep -q "garbage after end of log at file $(segfile "$S4" "$endoff") offset $((endoff % 65536 + 40))" "$T/v.out"
ok $? "verify names the garbage's file and offset" || diag "$T/v.out"

# ---- a store that was not closed cleanly: an append the stop tore ------------------------
# The writer places a record's body before its header: a crash between the two leaves zeros
# where the header goes and the body after them.  With `abort` (the store did not close), that
# tail is a note, as recovery clears it; without, it is garbage; damage below the
# checkpoint's confirmPhyOffset, or followed by a record, stays a problem.
tornseg=$(printf "commitlog/%020d" $((endoff - endoff % 65536)))
[ $((endoff % 65536 + lsize)) -le 65536 ]
ok $? "the last segment has room for one more record after the end ($endoff)"
# torn_copy STORE FROM TO LEN: bytes [FROM, FROM+LEN) of the log written at TO.
torn_copy() {
    perl -e 'my ($in, $from, $out, $to, $len) = @ARGV;
        open(my $f, "<", $in) or die "$in: $!"; binmode $f; seek($f, $from, 0);
        read($f, my $b, $len) == $len or die "short read";
        open(my $g, "+<", $out) or die "$out: $!"; binmode $g; seek($g, $to, 0);
        print $g $b; close $g or die' "$(segfile "$1" "$2")" $(($2 % 65536)) \
        "$(segfile "$1" "$3")" $(($3 % 65536)) "$4"
}
U1="$T/torn-body"
cp -a "$S0" "$U1"
torn_copy "$U1" $((lphys + 88)) $((endoff + 88)) $((lsize - 88))
"$CTL" verify --store "$U1" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "a closed store: a body after the end of the log, with no header, is garbage"
grep -q "garbage after end of log at file [^ ]*/$tornseg offset $((endoff % 65536 + 88))" "$T/v.out"
ok $? "verify names where the garbage starts" || diag "$T/v.out"
: >"$U1/abort"
"$CTL" verify --store "$U1" $SMALL >"$T/v.out" 2>&1
ok $? "a store not closed cleanly: the same bytes are an append the stop tore" || diag "$T/v.out"
grep -q "file [^ ]*/$tornseg offset $((endoff % 65536)): $lsize bytes at the end of the log (phys $endoff) are an append torn" "$T/v.out"
ok $? "verify notes the torn append, its place and its length" || diag "$T/v.out"
grep -q "verify: OK: $N records" "$T/v.out"
ok $? "verify still counts every whole record ($N)" || diag "$T/v.out"
# A header written, its CRCs not yet: the copy names another physical offset and no CRC.
U2="$T/torn-head"
cp -a "$S0" "$U2"
torn_copy "$U2" "$lphys" "$endoff" $((lsize - 10))
: >"$U2/abort"
"$CTL" verify --store "$U2" $SMALL >"$T/v.out" 2>&1
ok $? "a store not closed cleanly: a record with its header and no CRCs at the end is torn" ||
    diag "$T/v.out"
grep -q "file [^ ]*/$tornseg offset $((endoff % 65536)): $((lsize - 10)) bytes at the end of the log" "$T/v.out"
ok $? "verify notes that torn append" || diag "$T/v.out"
# The last record's header zeroed: it lies below confirmPhyOffset, so it was flushed.
U3="$T/torn-confirmed"
cp -a "$S0" "$U3"
zero_at "$(segfile "$U3" "$lphys")" $lrel 8
: >"$U3/abort"
"$CTL" verify --store "$U3" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "a store not closed cleanly: a flushed record with its header zeroed is damage"
grep -q "garbage after end of log at file $(segfile "$U3" "$lphys") offset $((lrel + 8))" "$T/v.out"
ok $? "verify names the damaged record's bytes as garbage" || diag "$T/v.out"
grep -q "append torn" "$T/v.out"
is "$?" "1" "and does not call it a torn append"
# A record's header zeroed in the middle of the log: records follow it.
U4="$T/torn-middle"
cp -a "$S0" "$U4"
zero_at "$(segfile "$U4" "$mphys")" $((mphys % 65536)) 8
: >"$U4/abort"
# Past the checkpoint (confirmPhyOffset 0), as a crash of a store that flushed less leaves it.
zero_at "$U4/checkpoint" 32 8
"$CTL" verify --store "$U4" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "a store not closed cleanly: a zeroed header with records after it is damage"
grep -q "append torn" "$T/v.out"
is "$?" "1" "and is not called a torn append" || diag "$T/v.out"
# The last record's unit not written yet: past the checkpoint, recovery adds it.
lq=$(echo "$last" | jfield queue_id)
lqoff=$(echo "$last" | jfield queue_offset)
U5="$T/undispatched"
cp -a "$S0" "$U5"
cqat=$((lqoff * 20))
zero_at "$(printf '%s/consumequeue/TopicA/%d/%020d' "$U5" "$lq" $((cqat - cqat % 2000)))" \
    $((cqat % 2000)) 20
: >"$U5/abort"
"$CTL" verify --store "$U5" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "a store not closed cleanly: a record below confirmPhyOffset without its unit is damage"
cp "$U4/checkpoint" "$U5/checkpoint"
"$CTL" verify --store "$U5" $SMALL >"$T/v.out" 2>&1
ok $? "a store not closed cleanly: a record past the checkpoint without its unit yet is not" ||
    diag "$T/v.out"
grep -q "note: 1 record from phys $lphys on has no unit in its queue yet" "$T/v.out"
ok $? "verify notes the record not dispatched yet" || diag "$T/v.out"
rm "$U5/abort"
"$CTL" verify --store "$U5" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "a closed store: a record without its unit is damage"

# ---- lost ConsumeQueue files -----------------------------------------------------------
S5="$T/cq"
cp -a "$S0" "$S5"
rm "$S5/consumequeue/TopicA/1/00000000000000002000"
"$CTL" verify --store "$S5" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails when a ConsumeQueue file is deleted"
grep -q "consumequeue/TopicA/1" "$T/v.out"
ok $? "verify names the damaged queue" || diag "$T/v.out"
"$CTL" recover --store "$S5" $SMALL >"$T/r.out" 2>&1
ok $? "recover succeeds"
grep -q '^units rebuilt: [1-9]' "$T/r.out"
ok $? "recover rebuilds the queue's units" || diag "$T/r.out"
"$CTL" verify --store "$S5" $SMALL >"$T/v.out" 2>&1
ok $? "verify passes after recover" || diag "$T/v.out"

rm "$S5/consumequeue/TopicA/2/00000000000000004000"
"$CTL" verify --store "$S5" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails when the last file of a queue is deleted"
grep -q "TopicA/2: 50 records have no unit" "$T/v.out"
ok $? "verify counts the records without a unit" || diag "$T/v.out"
"$CTL" recover --store "$S5" $SMALL --rebuild >"$T/r.out" 2>&1
ok $? "recover --rebuild succeeds"
"$CTL" verify --store "$S5" $SMALL >"$T/v.out" 2>&1
ok $? "verify passes after recover --rebuild" || diag "$T/v.out"

# ---- config files and checkpoint -------------------------------------------------------
"$CTL" verify --store "$S0" $SMALL >"$T/v.out" 2>&1
grep -q "verify: OK: .* config and checkpoint; 0 notes" "$T/v.out"
ok $? "verify checks the config files and the checkpoint of the generated store" || diag "$T/v.out"
S8="$T/meta"
cp -a "$S0" "$S8"
flipbit "$S8/config/topics.json" "$(grep -bo topicConfigTable "$S8/config/topics.json" | cut -d: -f1)"
"$CTL" verify --store "$S8" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails on a flipped bit in topics.json's table key"
grep -q "^problem: $S8/config/topics.json is damaged (no \"topicConfigTable\" table" "$T/v.out"
ok $? "and names topics.json and what is missing" || diag "$T/v.out"
rm "$S8/config/topics.json" "$S8/config/topics.json.bak"
"$CTL" verify --store "$S8" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails when topics.json and its .bak are gone but TopicA has consume queues"
grep -q "topic \"TopicA\" has consume queues .* restored with 4 read and write queues" "$T/v.out"
ok $? "and says the broker restores TopicA with its 4 queues" || diag "$T/v.out"
cp "$S0/config/topics.json" "$S0/config/topics.json.bak" "$S8/config/"
flipbit "$S8/checkpoint" 39
"$CTL" verify --store "$S8" $SMALL >"$T/v.out" 2>&1
is "$?" "1" "verify fails on a flipped bit in the checkpoint's confirmPhyOffset"
grep -q "^problem: $S8/checkpoint: confirmPhyOffset" "$T/v.out"
ok $? "and names the checkpoint and the field" || diag "$T/v.out"
is "$(grep -c '^problem:' "$T/v.out")" "1" "and reports nothing else"

# ---- the store lock ------------------------------------------------------------------
S6="$T/locked"
"$CTL" gen --store "$S6" $SMALL --topic TopicB --count 1000000000 --size 4000 \
    >"$T/bg.out" 2>"$T/bg.err" &
BGPID=$!
# A third segment exists once the first is full (the next one is prepared
# ahead): the writer holds the lock and has written at least a few records.
seg3="$S6/commitlog/00000000000000131072"
i=0
while [ ! -e "$seg3" ] && [ $i -lt 3000 ] && kill -0 "$BGPID" 2>/dev/null; do
    sleep 0.01
    i=$((i + 1))
done
# Stopped, the writer keeps the lock but no longer fills the disk.
kill -STOP "$BGPID" 2>/dev/null
[ -e "$seg3" ] && [ -e "$S6/abort" ]
ok $? "a background gen holds the store and has written records"
"$CTL" gen --store "$S6" $SMALL --topic TopicB --count 1 --size 10 >/dev/null 2>"$T/g.err"
is "$?" "1" "gen refuses a store another process holds"
grep -q "pid $BGPID" "$T/g.err"
ok $? "the error names the holder" || diag "$T/g.err"
"$CTL" dump --store "$S6" $SMALL commitlog --count 3 >"$T/d.out" 2>&1
ok $? "dump reads the store while it is held"
is "$(wc -l <"$T/d.out" | tr -d ' ')" "3" "dump --count 3 shows 3 records"
kill -TERM "$BGPID"
kill -CONT "$BGPID"
wait "$BGPID"
is "$?" "1" "an interrupted gen exits 1"
BGPID=""
written=$(sed -n 's/^gen: wrote \([0-9]*\) messages.*/\1/p' "$T/bg.out")
"$CTL" verify --store "$S6" $SMALL >"$T/v.out" 2>&1
ok $? "the interrupted gen closed the store cleanly" || diag "$T/v.out"
grep -q "verify: OK: $written records" "$T/v.out"
ok $? "the store holds the $written messages gen reported" || diag "$T/v.out"

echo "1..$n"
[ "$failed" -eq 0 ]
