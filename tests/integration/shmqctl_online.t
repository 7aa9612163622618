#!/bin/sh
# shmqctl's online commands against a real broker (shmqd and its workers) on a
# temporary store with small segments: topic create/update/list/delete on a
# stopped store (config/topics.json) and on a running one (control block);
# send and consume round trips (text, --json, stdin and binary bodies, tags,
# queues, sharding keys, --count, --async); consumer group offsets are
# committed and continued; --from last; messages breaking a limit (oversized
# body, bad topic name) get a clear error and nothing is appended.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init shmqctl-online

# topic list of the store as "name read write perm order" lines.
topics() {
    "$CTL" topic --store "$STORE" $SMALL list --json "$@" |
        perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_);
            print join(" ", $j->{topic}, $j->{read_queue_nums}, $j->{write_queue_nums},
                $j->{perm}, $j->{order} ? "true" : "false"), "\n"'
}
# topics.json's entry for topic $1 as "read write perm order", or "absent".
topics_json() {
    perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or do { print "absent\n"; exit };
        my $j = JSON::PP->new->decode(<$f>); my $t = $j->{topicConfigTable}{$ARGV[1]};
        print $t ? join(" ", $t->{readQueueNums}, $t->{writeQueueNums}, $t->{perm},
            $t->{order} ? "true" : "false") . "\n" : "absent\n"' "$STORE/config/topics.json" "$1"
}

# ---- topics on a stopped store ----------------------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicA --queues 3 >"$T/out" 2>&1
ok $? "topic create on a new, stopped store" || diag "$T/out"
is "$(topics_json TopicA)" "3 3 6 false" "topics.json holds the topic with 3 queues, perm 6"
is "$(topics)" "TopicA 3 3 6 false" "topic list reads the stopped store's topics.json"
"$CTL" topic --store "$STORE" $SMALL create TopicA >"$T/out" 2>&1
is "$?" "1" "creating an existing topic fails"
grep -q "already exists" "$T/out"
ok $? "and says that it exists" || diag "$T/out"
"$CTL" topic --store "$STORE" $SMALL update TopicA --write-queues 2 --perm 4 >"$T/out" 2>&1
ok $? "topic update on a stopped store" || diag "$T/out"
is "$(topics_json TopicA)" "3 2 4 false" "update changes only the options given"
"$CTL" topic --store "$STORE" $SMALL update NoSuchTopic --queues 2 >"$T/out" 2>&1
is "$?" "1" "updating a missing topic fails"
"$CTL" topic --store "$STORE" $SMALL delete NoSuchTopic >"$T/out" 2>&1
is "$?" "1" "deleting a missing topic fails"
"$CTL" topic --store "$STORE" $SMALL create 'bad topic!' >"$T/out" 2>&1
is "$?" "2" "a bad topic name is a usage error"
grep -q "invalid topic name" "$T/out"
ok $? "and says so" || diag "$T/out"
"$CTL" topic --store "$STORE" $SMALL create "$(printf 'T%.0s' $(seq 1 128))" >"$T/out" 2>&1
is "$?" "2" "a topic name over maxTopicLength is a usage error"
for bad in "--queues 0" "--queues 1025" "--read-queues 2000" "--write-queues -1" "--perm 99"; do
    "$CTL" topic --store "$STORE" $SMALL create TopicX $bad >"$T/out" 2>&1
    is "$?" "2" "topic create $bad is refused"
done
is "$(topics_json TopicX)" "absent" "no refused topic reached topics.json"
"$CTL" topic --store "$STORE" $SMALL frobnicate TopicA >"$T/out" 2>&1
is "$?" "2" "an unknown topic action is a usage error"

# ---- start the broker ------------------------------------------------------------------
start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
is "$(topics)" "TopicA 3 2 4 false" "the running store loaded the topic from topics.json"

"$CTL" topic --store "$STORE" $SMALL update TopicA --queues 4 --perm 6 >"$T/out" 2>&1
ok $? "topic update on a running store" || diag "$T/out"
is "$(topics)" "TopicA 4 4 6 false" "the running store's table shows the change"
is "$(topics_json TopicA)" "4 4 6 false" "and topics.json is rewritten at once"
"$CTL" topic --store "$STORE" $SMALL create TopicB --queues 2 --order >"$T/out" 2>&1
ok $? "topic create --order on a running store" || diag "$T/out"
is "$(topics | grep '^TopicB')" "TopicB 2 2 6 true" "the new topic is listed with its options"
"$CTL" topic --store "$STORE" $SMALL create TopicB >"$T/out" 2>&1
is "$?" "1" "creating an existing topic fails on a running store too"
"$CTL" topic --store "$STORE" $SMALL delete TopicB >"$T/out" 2>&1
ok $? "topic delete on a running store" || diag "$T/out"
is "$(topics | grep -c '^TopicB')" "0" "the deleted topic is no longer listed"
is "$(topics_json TopicB)" "absent" "and no longer in topics.json"
"$CTL" topic --store "$STORE" $SMALL delete TopicB >"$T/out" 2>&1
is "$?" "1" "deleting it again fails"
"$CTL" topic --store "$STORE" $SMALL list >"$T/out" 2>&1
grep -q '^TopicA read_queues=4 write_queues=4 perm=6 order=false$' "$T/out"
ok $? "topic list prints text lines" || diag "$T/out"

# ---- send ----------------------------------------------------------------------------------
wrote0=$(position wrote)
"$CTL" send --store "$STORE" $SMALL TopicA hello --tags T1 --keys 'k1 k2' >"$T/s1" 2>&1
ok $? "send of one message" || diag "$T/s1"
grep -Eq '^SEND_OK msgId=[0-9A-F]{32} uniqKey=[0-9A-F]{32} queue=[0-3] queueOffset=0 physOffset=[0-9]+$' "$T/s1"
ok $? "prints SEND_OK with ids, queue and offsets" || diag "$T/s1"
"$CTL" send --store "$STORE" $SMALL TopicA --count 20 --size 300 >"$T/s2" 2>&1
ok $? "send --count 20 --size 300" || diag "$T/s2"
grep -Eq '^send: messages=20 errors=0 elapsed=[0-9.]+ s rate=[0-9]+ msgs/s$' "$T/s2"
ok $? "--count prints a summary only" || diag "$T/s2"
"$CTL" send --store "$STORE" $SMALL TopicA --count 10 --size 200 --async 4 >"$T/s3" 2>&1
ok $? "send --async 4" || diag "$T/s3"
grep -q '^send: messages=10 errors=0 ' "$T/s3"
ok $? "every asynchronous send completed" || diag "$T/s3"
printf 'from\nstdin' | "$CTL" send --store "$STORE" $SMALL TopicA --tags T2 >"$T/s4" 2>&1
ok $? "send reads the body from stdin" || diag "$T/s4"
printf 'bin\000\001\377end' | "$CTL" send --store "$STORE" $SMALL TopicA >"$T/s5" 2>&1
ok $? "send of a binary body from stdin" || diag "$T/s5"
"$CTL" send --store "$STORE" $SMALL TopicA q1msg --queue 1 >"$T/s6" 2>&1
grep -q ' queue=1 ' "$T/s6"
ok $? "send --queue 1 stores in queue 1" || diag "$T/s6"
"$CTL" send --store "$STORE" $SMALL TopicA sk1 --sharding-key order-42 >"$T/s7" 2>&1 &&
    "$CTL" send --store "$STORE" $SMALL TopicA sk2 --sharding-key order-42 >"$T/s8" 2>&1
ok $? "send --sharding-key" || diag "$T/s8"
is "$(sed -n 's/.* queue=\([0-9]*\) .*/\1/p' "$T/s7")" "$(sed -n 's/.* queue=\([0-9]*\) .*/\1/p' "$T/s8")" \
    "one sharding key, one queue"
"$CTL" send --store "$STORE" $SMALL AutoTopic auto >"$T/s9" 2>&1
ok $? "send to a topic that does not exist creates it (autoCreateTopicEnable)" || diag "$T/s9"
is "$(topics | grep '^AutoTopic')" "AutoTopic 4 4 6 false" "with defaultTopicQueueNums queues"
NSENT=36 # 1 + 20 + 10 + 1 + 1 + 1 + 2 messages of TopicA
cat "$T/s1" "$T/s4" "$T/s5" "$T/s6" "$T/s7" "$T/s8" | sed -n 's/^SEND_OK .*uniqKey=\([0-9A-F]*\) .*/\1/p' |
    sort >"$T/sent_keys"

# ---- limits: nothing is appended ---------------------------------------------------------------
wrote1=$(position wrote)
[ -n "$wrote1" ] && [ "$wrote1" -gt "$wrote0" ]
ok $? "the CommitLog grew with the messages sent ($wrote0 -> $wrote1)"
head -c 65537 /dev/zero | tr '\0' x | "$CTL" send --store "$STORE" $SMALL TopicA >"$T/l1" 2>&1
is "$?" "1" "a body over maxMessageSize from stdin is refused"
grep -q "exceeds the store's maxMessageSize 65536" "$T/l1"
ok $? "with a clear message" || diag "$T/l1"
"$CTL" send --store "$STORE" $SMALL TopicA "$(head -c 65537 /dev/zero | tr '\0' y)" >"$T/l2" 2>&1
is "$?" "1" "a body argument over maxMessageSize is refused by the producer library"
grep -qi "too big\|exceeds\|maxMessageSize" "$T/l2"
ok $? "with a clear message" || diag "$T/l2"
"$CTL" send --store "$STORE" $SMALL TopicA --size 70000 >"$T/l3" 2>&1
is "$?" "1" "--size over maxMessageSize is refused"
"$CTL" send --store "$STORE" $SMALL 'bad topic' body >"$T/l4" 2>&1
is "$?" "2" "a bad topic name is refused"
grep -q "invalid topic name 'bad topic'" "$T/l4"
ok $? "with a clear message" || diag "$T/l4"
"$CTL" send --store "$STORE" $SMALL "$(printf 'T%.0s' $(seq 1 128))" body >"$T/l5" 2>&1
is "$?" "2" "a topic name over maxTopicLength is refused"
"$CTL" send --store "$STORE" $SMALL TopicA body --size 10 >"$T/l6" 2>&1
is "$?" "2" "BODY and --size together are a usage error"
is "$(position wrote)" "$wrote1" "nothing was appended for the refused messages"

# ---- consume ----------------------------------------------------------------------------------
"$CTL" consume --store "$STORE" $SMALL TopicA --group G1 --json --timeout 1500 >"$T/c1" 2>"$T/c1.err"
ok $? "consume --json of every queue" || diag "$T/c1.err"
is "$(wc -l <"$T/c1" | tr -d ' ')" "$NSENT" "consume returns every message sent"
jfield uniq_key <"$T/c1" | sort >"$T/c1_keys"
is "$(comm -23 "$T/sent_keys" "$T/c1_keys" | wc -l | tr -d ' ')" "0" \
    "every message whose result was printed was consumed"
is "$(sort -u "$T/c1_keys" | wc -l | tr -d ' ')" "$NSENT" "each message exactly once"
perl -MJSON::PP -e 'my %last; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
    my $q = $j->{queue}; exit 1 if exists $last{$q} && $j->{queue_offset} != $last{$q} + 1;
    exit 1 if !exists $last{$q} && $j->{queue_offset} != 0; $last{$q} = $j->{queue_offset} }' <"$T/c1"
ok $? "queue offsets are contiguous from 0 in every queue"
perl -MJSON::PP -e 'while (<STDIN>) { my $j = JSON::PP->new->decode($_); next unless $j->{body} eq "hello";
    exit($j->{tags} eq "T1" && $j->{keys} eq "k1 k2" && $j->{topic} eq "TopicA" &&
        $j->{body_encoding} eq "text" && $j->{msg_id} =~ /^[0-9A-F]{32}$/ &&
        $j->{reconsume_times} == 0 && $j->{store_ts} > 0 ? 0 : 1) } exit 1' <"$T/c1"
ok $? "JSON lines carry topic, tags, keys, ids, times and the body"
perl -MJSON::PP -e 'while (<STDIN>) { my $j = JSON::PP->new->decode($_);
    exit 0 if $j->{body} eq "from\nstdin" && $j->{tags} eq "T2" } exit 1' <"$T/c1"
ok $? "a text body with a newline comes back as text"
perl -MJSON::PP -MMIME::Base64 -e 'while (<STDIN>) { my $j = JSON::PP->new->decode($_);
    exit 0 if $j->{body_encoding} eq "base64" && decode_base64($j->{body}) eq "bin\0\1\377end" }
    exit 1' <"$T/c1"
ok $? "a binary body comes back as base64"
is "$(perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_);
    print "$j->{msg_id} $j->{uniq_key} $j->{queue} $j->{queue_offset} $j->{phys_offset}\n"
        if $j->{body} eq "hello"' <"$T/c1")" \
    "$(sed -n 's/^SEND_OK msgId=\([0-9A-F]*\) uniqKey=\([0-9A-F]*\) queue=\([0-9]*\) queueOffset=\([0-9]*\) physOffset=\([0-9]*\)$/\1 \2 \3 \4 \5/p' "$T/s1")" \
    "the consumed message has the ids, queue and offsets send printed"

"$CTL" consume --store "$STORE" $SMALL TopicA --group G1 --timeout 300 >"$T/c2" 2>&1
ok $? "consume again with the same group"
is "$(wc -l <"$T/c2" | tr -d ' ')" "0" "the group's committed offsets hold: nothing new"

"$CTL" consume --store "$STORE" $SMALL TopicA --group G2 --count 5 --timeout 1500 >"$T/c3" 2>&1
ok $? "consume --count 5 (text)" || diag "$T/c3"
is "$(grep -c '^topic=TopicA queue=[0-9] queueOffset=[0-9]* physOffset=[0-9]* msgId=' "$T/c3")" "5" \
    "prints 5 text lines"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G2 --json --timeout 1000 >"$T/c4" 2>&1
is "$(wc -l <"$T/c4" | tr -d ' ')" "$((NSENT - 5))" "the same group continues after the 5"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G2 --count 1 --timeout 300 >"$T/c5" 2>&1
is "$?" "1" "consume --count fails when fewer messages come before the timeout"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G2 --count 1 --timeout 0 >"$T/c5b" 2>&1
is "$?" "1" "consume --timeout 0 with nothing new fails"
grep -q "got 0 of 1 messages" "$T/c5b" && ! grep -q "no topic" "$T/c5b"
ok $? "and says it got none, not that the topic does not exist" || diag "$T/c5b"
"$CTL" consume --store "$STORE" $SMALL NoSuchTopic --group G2 --count 1 --timeout 0 >"$T/c5c" 2>&1
grep -q "no topic NoSuchTopic" "$T/c5c"
ok $? "consume --timeout 0 of a topic that does not exist says so" || diag "$T/c5c"

"$CTL" consume --store "$STORE" $SMALL TopicA --group G3 --tags T1 --json --timeout 1000 >"$T/c6" 2>&1
is "$(jfield body <"$T/c6" | tr '\n' ' ')" "hello " "--tags T1 returns only the message tagged T1"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G3 --timeout 300 >"$T/c7" 2>&1
is "$(wc -l <"$T/c7" | tr -d ' ')" "0" "the filtered-out messages count as consumed"

"$CTL" consume --store "$STORE" $SMALL TopicA --group G4 --from last --timeout 300 >"$T/c8a" 2>&1
ok $? "consume --from last of a new group"
is "$(wc -l <"$T/c8a" | tr -d ' ')" "0" "returns none of the old messages"
# The group's start (the end of each queue) was committed: a later run of
# the group, here one already waiting (long polling), gets what comes next.
"$CTL" consume --store "$STORE" $SMALL TopicA --group G4 --json --count 1 \
    --timeout 8000 >"$T/c8" 2>"$T/c8.err" &
CPID=$!
bg_add $CPID
sleep 0.5
"$CTL" send --store "$STORE" $SMALL TopicA late-message >/dev/null 2>&1
wait_pid $CPID 100
ok $? "a waiting consumer gets a new message (long polling)" || diag "$T/c8.err"
is "$(jfield body <"$T/c8")" "late-message" "and only the new one"

"$CTL" consume --store "$STORE" $SMALL TopicA >"$T/u1" 2>&1
is "$?" "2" "consume without --group is a usage error"
"$CTL" consume --store "$STORE" $SMALL TopicA --group G5 --from middle >"$T/u2" 2>&1
is "$?" "2" "consume --from with a bad word is a usage error"
"$CTL" consume --store "$STORE" $SMALL NoSuchTopic --group G5 --timeout 300 >"$T/u3" 2>&1
is "$?" "1" "consume of a missing topic fails"
grep -q "no topic NoSuchTopic" "$T/u3"
ok $? "and names it" || diag "$T/u3"

# ---- stop ---------------------------------------------------------------------------------------
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1; my $t = $ARGV[0];
    my $s = <$f>; $s =~ s/([{,]\s*)(\d+)(\s*:)/$1"$2"$3/g; my $j = JSON::PP->new->decode($s);
    my $o = $j->{offsetTable}{"TopicA\@G1"} or exit 1; my $sum = 0; $sum += $_ for values %$o;
    exit($sum == $ARGV[1] ? 0 : 1)' "$STORE/config/consumerOffset.json" "$NSENT"
ok $? "consumerOffset.json holds group G1's offsets ($NSENT messages)"
"$CTL" send --store "$STORE" $SMALL TopicA nobody-home >"$T/n1" 2>&1
is "$?" "1" "send to a stopped store fails"
grep -q "not running" "$T/n1"
ok $? "and says the store is not running" || diag "$T/n1"
"$CTL" verify --store "$STORE" $SMALL >"$T/v" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/v"
is "$("$CTL" dump --store "$STORE" $SMALL commitlog | wc -l | tr -d ' ')" "$((NSENT + 2))" \
    "the CommitLog holds exactly the messages sent (TopicA, late message, AutoTopic)"
is "$(topics | cut -d' ' -f1 | tr '\n' ' ')" "AutoTopic TopicA " "topics.json after the stop"

done_testing
