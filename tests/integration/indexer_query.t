#!/bin/sh
# The indexer in a running broker and `shmqctl query`: messages sent with
# `shmqctl send --keys` are found by each of their keys (keys with equal Java
# hashCode are not confused), by UNIQ_KEY, by message id and by CommitLog
# offset, in text and JSON; time ranges select; small index files roll;
# status shows positions.indexed; `offset-by-time` answers; queries work
# from a user who cannot write the store, and on the stopped store.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init indexer-query

INDEX="--set maxHashSlotNum=64 --set maxIndexNum=100"
Q() { "$CTL" query --store "$STORE" $SMALL $INDEX "$@"; }

start_broker $INDEX
ok $? "shmqd starts with the indexer" || diag "$T/shmqd.log"
[ "$(worker_field indexer state)" = "running" ]
ok $? "status lists the indexer as running"

send() {
    "$CTL" send --store "$STORE" $SMALL TopicIdx "$@" >>"$T/send.out" 2>&1
}
send "first body" --keys "order-1 cust-A Aa"
send "second body" --keys "order-2 cust-A BB"
send "third body" --keys "order-3 cust-B"
T1=$(now_ms)
sleep 0.02
send --count 150 --size 32 --keys "bulk"
ok $? "messages with keys sent" || diag "$T/send.out"
wait_pos indexed
ok $? "positions.indexed reaches positions.wrote" || diag "$T/shmqd.log"

Q --topic TopicIdx --key cust-A >"$T/q1" 2>&1
ok $? "query by key finds messages" || diag "$T/q1"
is "$(wc -l <"$T/q1" | tr -d ' ')" "2" "both messages with key cust-A"
head -n 1 "$T/q1" | grep -q 'body=second body'
ok $? "newest first" || diag "$T/q1"

Q --topic TopicIdx --key Aa --json >"$T/q2" 2>&1
is "$(jfield body <"$T/q2")" "first body" "key Aa finds only its message (BB has the same hashCode)"
Q --topic TopicIdx --key BB --json >"$T/q3" 2>&1
is "$(jfield body <"$T/q3")" "second body" "key BB finds only its message"
is "$(jfield keys <"$T/q3")" "order-2 cust-A BB" "the JSON line has consume's fields (keys)"

Q --topic TopicIdx --key nosuchkey >"$T/q4" 2>&1
is "$?" "1" "a key nobody sent: exit 1"
Q --topic OtherTopic --key cust-A >"$T/q5" 2>&1
is "$?" "1" "the key under another topic is not found"

Q --topic TopicIdx --key bulk --max 1024 >"$T/q6" 2>&1
is "$(wc -l <"$T/q6" | tr -d ' ')" "150" "150 bulk messages over several index files"
Q --topic TopicIdx --key bulk >"$T/q6b" 2>&1
is "$(wc -l <"$T/q6b" | tr -d ' ')" "64" "the default limit is maxMsgsNumBatch (64)"
nfiles=$(ls "$STORE/index" | grep -c '^[0-9]\{17\}$')
[ "$nfiles" -ge 3 ]
ok $? "small index files rolled ($nfiles files)"

Q --topic TopicIdx --key cust-A --end "$T1" >"$T/q7" 2>&1
is "$(wc -l <"$T/q7" | tr -d ' ')" "2" "--end before the bulk messages keeps the first two"
Q --topic TopicIdx --key bulk --begin "$T1" --max 1024 >"$T/q8" 2>&1
is "$(wc -l <"$T/q8" | tr -d ' ')" "150" "--begin selects the bulk messages"
Q --topic TopicIdx --key cust-A --begin "2000-01-01 00:00:00" --end "2000-01-02 00:00:00" >"$T/q9" 2>&1
is "$?" "1" "a range in 2000 finds nothing (local time format accepted)"

uniq=$(grep -m 1 'SEND_OK' "$T/send.out" | sed 's/.*uniqKey=\([0-9A-F]*\).*/\1/')
msgid=$(grep -m 1 'SEND_OK' "$T/send.out" | sed 's/.*msgId=\([0-9A-F]*\).*/\1/')
phys=$(grep -m 1 'SEND_OK' "$T/send.out" | sed 's/.*physOffset=\([0-9]*\).*/\1/')
Q --uniq-key "$uniq" --json >"$T/q10" 2>&1
is "$(jfield body <"$T/q10")" "first body" "query --uniq-key (any topic)"
Q --msg-id "$msgid" --json >"$T/q11" 2>&1
is "$(jfield phys_offset <"$T/q11")" "$phys" "query --msg-id decodes the offset"
Q --phys-offset "$phys" --json >"$T/q12" 2>&1
is "$(jfield uniq_key <"$T/q12")" "$uniq" "query --phys-offset"
Q --msg-id "XYZ" >"$T/q13" 2>&1
is "$?" "2" "a malformed message id is a usage error"

"$CTL" offset-by-time --store "$STORE" $SMALL --topic TopicIdx --queue 0 --time 0 >"$T/o1" 2>&1
is "$(cat "$T/o1")" "0" "offset-by-time before every message: 0"
"$CTL" offset-by-time --store "$STORE" $SMALL --topic TopicIdx --queue 0 \
    --time 4102444800000 >"$T/o2" 2>&1
max0=$("$CTL" consume --store "$STORE" $SMALL TopicIdx --group G --timeout 500 --json 2>/dev/null |
    perl -MJSON::PP -ne '$j = JSON::PP->new->decode($_); $n++ if $j->{queue} == 0; END { print $n+0 }')
is "$(cat "$T/o2")" "$max0" "offset-by-time after every message: the queue's max offset"

status_json >"$T/status.json"
perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
    exit(defined $j->{positions}{indexed} && defined $j->{index_flushed_ts} ? 0 : 1)' <"$T/status.json"
ok $? "status --json has positions.indexed and index_flushed_ts"
"$CTL" status --store "$STORE" $SMALL | grep -q '^index: *indexed'
ok $? "status text has an index line"

# A user of the store's group, who can read but not write the store, queries it;
# a user outside the group cannot read it at all (docs/security.md).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    chmod 755 "$T"
    SGID=$(stat -c %g "$STORE")
    setpriv --reuid=65534 --regid="$SGID" --clear-groups "$CTL" query --store "$STORE" $SMALL \
        $INDEX --topic TopicIdx --key order-3 >"$T/q14" 2>&1
    ok $? "a user of the store's group, who cannot write the store, queries it" || diag "$T/q14"
    grep -q 'body=third body' "$T/q14"
    ok $? "and finds the message"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" query --store "$STORE" $SMALL \
        $INDEX --topic TopicIdx --key order-3 >"$T/q14b" 2>&1
    [ $? -ne 0 ] && grep -q 'Permission denied' "$T/q14b"
    ok $? "a user outside the store's group is refused" || diag "$T/q14b"
else
    ok 0 "# SKIP not root or no setpriv: read-only user check"
    ok 0 "# SKIP not root or no setpriv"
    ok 0 "# SKIP not root or no setpriv"
fi

stop_broker
ok $? "shmqd stops cleanly with the indexer (exit $STOP_RC)" || diag "$T/shmqd.log"
grep -q 'indexer.*finished: indexed' "$T/shmqd.log"
ok $? "the indexer indexed to the end before the stop" || diag "$T/shmqd.log"

Q --topic TopicIdx --key order-2 >"$T/q15" 2>&1
ok $? "query works on the stopped store" || diag "$T/q15"

# Restart: the indexer resumes after the last message; nothing is indexed twice.
start_broker $INDEX
ok $? "shmqd starts again" || diag "$T/shmqd.log"
wait_pos indexed
ok $? "after the restart, positions.indexed is the end at once (nothing new to index)"
send "after restart" --keys "late cust-A"
wait_pos indexed
ok $? "positions.indexed reaches positions.wrote after the restart" || diag "$T/shmqd.log"
Q --topic TopicIdx --key cust-A >"$T/q16" 2>&1
is "$(wc -l <"$T/q16" | tr -d ' ')" "3" "a message sent after the restart is indexed" || diag "$T/q16"
grep 'SEND_OK' "$T/send.out" | sed 's/.*uniqKey=\([0-9A-F]*\).*/\1/' >"$T/uniqs"
"$HELPERS/index_check" --store "$STORE" --topic TopicIdx $SMALL $INDEX <"$T/uniqs" >"$T/check" 2>&1
ok $? "index_check ran" || diag "$T/check"
is "$(awk '$2 != 1 || $3 != 1' "$T/check" | wc -l | tr -d ' ')" "0" \
    "every UNIQ_KEY: one message, one index entry"
stop_broker
ok $? "shmqd stops cleanly again"

done_testing
