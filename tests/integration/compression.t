#!/bin/sh
# Compressed message bodies, as RocketMQ stores them:
#   - a producer stores a single message's body of 4 KiB or more (RocketMQ's
#     producer compares with >=) as one LZ4 frame
#     with sysflag COMPRESSED | LZ4 (0x101); a small body, a body sent with
#     --compress-over 0 and one whose frame would be no smaller stay as they are;
#   - a batch is never compressed; a message's own compress_over overrides the
#     producer's threshold (never, or a lower one); asynchronous sends compress;
#   - BODYCRC is the CRC of the stored (compressed) bytes;
#   - a message sent back by its consumer keeps its stored (compressed) bytes;
#   - consume and dump give the original bodies (--raw: the stored bytes);
#   - bodies other clients write compressed (zlib with type bits 0 or 3, zstd)
#     are read back decompressed;
#   - a body that does not decompress, and one that expands past
#     maxMessageSize, stop the consumer at that message, named, and
#     --skip-corrupt passes it; nothing else is lost;
#   - a pull stops early once it holds 32 MiB of decompressed bodies, and the
#     next pull goes on there: 40 bodies of 1,000,000 bytes all arrive.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init compression

# dump: every record of the CommitLog as JSON lines ($1: extra options), in $T/dump.json.
dump() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json $1 >"$T/dump.json" 2>"$T/dump.err"
}
# field TOPIC FIELD [FILE]: FIELD of each JSON line of TOPIC (one line each).
field() {
    perl -MJSON::PP -e 'my ($t, $f) = @ARGV; while (my $l = <STDIN>) {
        my $j = JSON::PP->new->decode($l); next if $j->{topic} ne $t;
        print defined $j->{$f} ? $j->{$f} : "null", "\n" }' "$1" "$2" <"${3:-$T/dump.json}"
}
# first_body TOPIC FILE: the body of the first JSON line of TOPIC in FILE, as bytes.
first_body() {
    perl -MJSON::PP -e 'my $t = shift; while (my $l = <STDIN>) {
        my $j = JSON::PP->new->decode($l); next if $j->{topic} ne $t;
        my $b = $j->{body}; utf8::encode($b); print $b; last }' "$1" <"$2"
}

start_broker --set maxMessageSize=1000000
ok $? "shmqd starts" || diag "$T/shmqd.log"
for t in TopicZ TopicW TopicBad TopicBomb TopicB TopicT TopicL; do
    "$CTL" topic --store "$STORE" $SMALL create $t --queues 1 >/dev/null 2>&1
done

# A compressible 16 KiB body (text lines), and a small one.
perl -e 'for my $i (0..511) { printf "line %05d of a compressible body\n", $i }' \
    | head -c 16384 >"$T/big.txt"
is "$(wc -c <"$T/big.txt")" "16384" "the big body has 16 KiB"
"$CTL" send --store "$STORE" $SMALL TopicZ <"$T/big.txt" >"$T/send1.out" 2>&1
ok $? "a 16 KiB body is sent" || diag "$T/send1.out"
"$CTL" send --store "$STORE" $SMALL TopicZ "a small body" >"$T/send2.out" 2>&1
ok $? "a small body is sent" || diag "$T/send2.out"
"$CTL" send --store "$STORE" $SMALL TopicZ --compress-over 0 <"$T/big.txt" >"$T/send3.out" 2>&1
ok $? "a 16 KiB body is sent with --compress-over 0" || diag "$T/send3.out"
"$CTL" send --store "$STORE" $SMALL TopicZ --compress-over 8 "a body of 27 bytes, over 8" \
    >"$T/send4.out" 2>&1
ok $? "a 27-byte body is sent with --compress-over 8" || diag "$T/send4.out"

sleep 0.5
dump --raw
ok $? "the log dumps (--raw)" || diag "$T/dump.err"
set -- $(field TopicZ sysflag)
is "$(( $1 & 0x701 )) $(( $2 & 0x701 )) $(( $3 & 0x701 ))" "257 0 0" \
    "sysflag: COMPRESSED|LZ4 (0x101) for the big body, none for the small one and with --compress-over 0"
is "$(field TopicZ compression | tr '\n' ' ')" "lz4 none none none " \
    "the 27-byte body is sent as it is: its LZ4 frame would be no smaller"
set -- $(field TopicZ stored_len)
[ "$1" -lt 4096 ] && [ "$3" -eq 16384 ]
ok $? "the big body is stored in $1 bytes (16384 uncompressed)"
perl -MJSON::PP -MMIME::Base64 -MCompress::Zlib -e 'while (my $l = <STDIN>) {
    my $j = JSON::PP->new->decode($l); next if $j->{topic} ne "TopicZ";
    my $b = $j->{body_encoding} eq "base64" ? decode_base64($j->{body}) : $j->{body};
    utf8::encode($b) if $j->{body_encoding} ne "base64";
    my $c = crc32($b) & 0x7fffffff;
    print $c == $j->{body_crc} ? "ok\n" : "bad $j->{phys_offset} $c $j->{body_crc}\n" }' \
    <"$T/dump.json" >"$T/crc.out"
is "$(sort -u "$T/crc.out")" "ok" "BODYCRC is the CRC of the stored (compressed) bytes"
perl -MJSON::PP -MMIME::Base64 -e 'while (my $l = <STDIN>) {
    my $j = JSON::PP->new->decode($l); next if $j->{topic} ne "TopicZ";
    my $b = $j->{body_encoding} eq "base64" ? decode_base64($j->{body}) : $j->{body};
    print unpack("H8", $b), "\n"; last }' <"$T/dump.json" >"$T/magic.out"
is "$(cat "$T/magic.out")" "04224d18" "the stored body is an LZ4 frame (magic 0x184D2204)"

dump
ok $? "the log dumps" || diag "$T/dump.err"
is "$(field TopicZ body_len | head -1)" "16384" "dump shows the big body decompressed"
first_body TopicZ "$T/dump.json" >"$T/dumped.txt"
cmp -s "$T/dumped.txt" "$T/big.txt"
ok $? "dump's decompressed body is the body sent"
"$CTL" dump --store "$STORE" $SMALL commitlog >"$T/dump.txt" 2>"$T/dump.err"
is "$(grep 'topic=TopicZ ' "$T/dump.txt" | head -2 |
    sed -n 's/.* sysflag=\(0x[0-9a-f]*\) body_len=[0-9]*\( compression=[a-z0-9]*\)\{0,1\} .*/\1\2/p' |
    tr '\n' ',')" "0x101 compression=lz4,0x0," \
    "the text dump names the compression of the compressed body only" || diag "$T/dump.txt"

"$CTL" consume --store "$STORE" $SMALL TopicZ --group GZ --json --count 4 --timeout 5000 \
    >"$T/cz.json" 2>"$T/cz.err"
ok $? "consume reads the 4 messages" || diag "$T/cz.err"
is "$(field TopicZ body_len "$T/cz.json" | tr '\n' ' ')" "16384 12 16384 26 " \
    "consume gives the original body lengths"
is "$(field TopicZ compression "$T/cz.json" | tr '\n' ' ')" "lz4 none none none " \
    "and says which body was stored compressed, and how"
first_body TopicZ "$T/cz.json" >"$T/consumed.txt"
cmp -s "$T/consumed.txt" "$T/big.txt"
ok $? "consume's body is the body sent"
"$CTL" consume --store "$STORE" $SMALL TopicZ --group GZR --json --count 1 --raw \
    --timeout 5000 >"$T/czr.json" 2>"$T/czr.err"
ok $? "consume --raw reads" || diag "$T/czr.err"
[ "$(field TopicZ body_len "$T/czr.json")" -lt 4096 ]
ok $? "consume --raw gives the stored bytes"

# ---- batches, per-message thresholds, asynchronous sends ---------------------------------
"$HELPERS/produce" "$STORE" TopicB 3 16384 --batch 3 >"$T/pb1.out" 2>&1
ok $? "a batch of 3 bodies of 16 KiB is sent" || diag "$T/pb1.out"
"$HELPERS/produce" "$STORE" TopicB 1 16384 --compress-over -1 >"$T/pb2.out" 2>&1
ok $? "a 16 KiB body with compress_over -1 is sent" || diag "$T/pb2.out"
"$HELPERS/produce" "$STORE" TopicB 1 100 --compress-over 50 >"$T/pb3.out" 2>&1
ok $? "a 100-byte body with compress_over 50 is sent" || diag "$T/pb3.out"
"$HELPERS/produce" "$STORE" TopicB 2 16384 --async 2 >"$T/pb4.out" 2>&1
ok $? "2 bodies of 16 KiB are sent asynchronously" || diag "$T/pb4.out"
sleep 0.5
dump
ok $? "the log dumps" || diag "$T/dump.err"
is "$(field TopicB compression | tr '\n' ' ')" "none none none none lz4 lz4 lz4 " \
    "batch and compress_over -1: stored as they are; compress_over 50 and async: LZ4"
is "$(field TopicB body_len | tr '\n' ' ')" "16384 16384 16384 16384 100 16384 16384 " \
    "dump gives every body's length"
"$CTL" consume --store "$STORE" $SMALL TopicB --group GBt --json --count 7 --timeout 5000 \
    >"$T/cbt.json" 2>"$T/cbt.err"
ok $? "consume reads the 7 messages" || diag "$T/cbt.err"
perl -MJSON::PP -e 'while (my $l = <STDIN>) { my $j = JSON::PP->new->decode($l);
    my ($p) = $j->{body} =~ /^(m\d+-)/; my $want = $p . ("x" x ($j->{body_len} - length($p)));
    print $j->{body} eq $want ? "ok\n" : "bad $j->{queue_offset}\n" }' <"$T/cbt.json" >"$T/cbt.out"
is "$(sort -u "$T/cbt.out")" "ok" "each body is the one sent"

# ---- the threshold: a body of exactly 4096 bytes is compressed, one of 4095 is not ---------
"$HELPERS/produce" "$STORE" TopicT 1 4096 >"$T/pt1.out" 2>&1
ok $? "a body of 4096 bytes is sent" || diag "$T/pt1.out"
"$HELPERS/produce" "$STORE" TopicT 1 4095 >"$T/pt2.out" 2>&1
ok $? "a body of 4095 bytes is sent" || diag "$T/pt2.out"
sleep 0.5
dump
is "$(field TopicT compression | tr '\n' ' ')" "lz4 none " \
    "compressed from 4096 bytes on (compressMsgBodyOverHowmuch, compared with >=)"

# ---- send-back keeps the stored bytes ----------------------------------------------------
"$CTL" consume --store "$STORE" $SMALL TopicZ --group GF --count 4 --fail --timeout 5000 \
    >"$T/cf.out" 2>"$T/cf.err"
ok $? "consume --fail sends the 4 messages back" || diag "$T/cf.err"
sleep 0.5
dump --raw
ok $? "the log dumps (--raw)" || diag "$T/dump.err"
is "$(field SCHEDULE_TOPIC_XXXX compression | tr '\n' ' ')" "lz4 none none none " \
    "the sent-back copies keep their compression"
set -- $(field SCHEDULE_TOPIC_XXXX stored_len)
is "${1:-0}" "$(field TopicZ stored_len | head -1)" "and the compressed body's stored bytes"

# ---- bodies of other clients -------------------------------------------------------------
for k in zlib0 zlib3 zstd; do
    "$HELPERS/compressed_send" "$STORE" TopicW $k >"$T/cs.$k.out" 2>&1
    ok $? "a $k body is stored" || diag "$T/cs.$k.out"
done
"$CTL" consume --store "$STORE" $SMALL TopicW --group GW --json --count 3 --timeout 5000 \
    >"$T/cw.json" 2>"$T/cw.err"
ok $? "consume reads them" || diag "$T/cw.err"
is "$(field TopicW compression "$T/cw.json" | tr '\n' ' ')" "zlib zlib zstd " \
    "type bits 0 read as zlib, 3 as zlib, 2 as zstd"
perl -MJSON::PP -e 'my @k = qw(zlib0 zlib3 zstd); my $i = 0; while (my $l = <STDIN>) {
    my $j = JSON::PP->new->decode($l); my $u = "compressed-$k[$i++] ";
    my $want = substr($u x (16384 / length($u) + 1), 0, 16384);
    print $j->{body} eq $want ? "ok\n" : "bad $i\n" }' <"$T/cw.json" >"$T/cw.out"
is "$(sort -u "$T/cw.out")" "ok" "each body is the original"

# ---- hostile bodies ----------------------------------------------------------------------
"$CTL" send --store "$STORE" $SMALL TopicBad "before" >/dev/null 2>&1
"$HELPERS/compressed_send" "$STORE" TopicBad garbage >"$T/cs.bad.out" 2>&1
ok $? "a body with LZ4 bits that is no LZ4 frame is stored" || diag "$T/cs.bad.out"
"$CTL" send --store "$STORE" $SMALL TopicBad "after" >/dev/null 2>&1
"$CTL" consume --store "$STORE" $SMALL TopicBad --group GB --count 3 --timeout 3000 \
    >"$T/cb.out" 2>"$T/cb.err"
is "$?" "1" "consume stops at it" || diag "$T/cb.err"
is "$(count_lines 'body=before' "$T/cb.out")" "1" "after the message before it"
grep -q "corrupt message TopicBad/0 queue offset 1: .*LZ4" "$T/cb.err"
ok $? "naming the message and the failed decompression" || diag "$T/cb.err"
"$CTL" consume --store "$STORE" $SMALL TopicBad --group GB --skip-corrupt 0:1 --count 0 \
    >/dev/null 2>"$T/skip.err"
ok $? "--skip-corrupt 0:1 gives it up" || diag "$T/skip.err"
"$CTL" consume --store "$STORE" $SMALL TopicBad --group GB --count 1 --timeout 3000 \
    >"$T/cb2.out" 2>"$T/cb2.err"
ok $? "consume goes on" || diag "$T/cb2.err"
is "$(count_lines 'body=after' "$T/cb2.out")" "1" "with the message after it"

"$HELPERS/compressed_send" "$STORE" TopicBomb bomb >"$T/cs.bomb.out" 2>&1
ok $? "a zlib body of 8 MiB of zeros is stored in a few KiB" || diag "$T/cs.bomb.out"
"$CTL" consume --store "$STORE" $SMALL TopicBomb --group GM --count 1 --timeout 3000 \
    >"$T/cm.out" 2>"$T/cm.err"
is "$?" "1" "consume refuses it" || diag "$T/cm.err"
grep -q "corrupt message TopicBomb/0 queue offset 0: .*maxMessageSize (1000000 bytes)" "$T/cm.err"
ok $? "as expanding past maxMessageSize" || diag "$T/cm.err"
"$CTL" dump --store "$STORE" $SMALL commitlog --json >/dev/null 2>"$T/dump-bomb.err"
is "$?" "1" "dump refuses to show it decompressed"
grep -q "does not decompress" "$T/dump-bomb.err"
ok $? "naming the record" || diag "$T/dump-bomb.err"
"$CTL" dump --store "$STORE" $SMALL commitlog --json --raw >/dev/null 2>"$T/dump-raw.err"
ok $? "dump --raw shows every record" || diag "$T/dump-raw.err"

# ---- many large bodies: a pull holds a bounded amount decompressed ----------------------------
"$HELPERS/produce" "$STORE" TopicL 40 1000000 --timeout 20000 >"$T/pl.out" 2>&1
ok $? "40 bodies of 1,000,000 bytes are sent (stored compressed)" || diag "$T/pl.out"
"$CTL" consume --store "$STORE" $SMALL TopicL --group GL --json --count 40 --timeout 10000 \
    >"$T/cl.json" 2>"$T/cl.err"
ok $? "consume reads all 40" || diag "$T/cl.err"
is "$(field TopicL body_len "$T/cl.json" | sort -u)" "1000000" "each with its whole body"
is "$(field TopicL queue_offset "$T/cl.json" | tr '\n' ' ')" "$(seq -s ' ' 0 39) " \
    "in order, none lost or repeated"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
