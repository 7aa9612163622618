#!/bin/sh
# A consumer's send-back keeps the original's UNIQ_KEY.  The writer appends
# an original message (topic TopicSB, queue 2) and is killed before it
# answers (step offsets); while its successor waits before the restart
# repair (writer-hold-repair), a send-back of that message (%RETRY% topic,
# delay level 3: stored as SCHEDULE_TOPIC_XXXX queue 2, the same queue id)
# is published in a ring the repair looks at first.  The repair must match
# each ring entry to the record it stored (topic and queue as stored, not
# the key alone): the original is answered from its record, the send-back
# is appended once, and each answer names its own record.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init writer-repair-sendback

TOPIC=TopicSB
GROUP=GroupSB
CRASH="$T/crash"
mkdir -p "$CRASH"
SHMQ_TEST_CRASH_DIR="$CRASH"
export SHMQ_TEST_CRASH_DIR

# wait_file PATH [TENTHS]: PATH exists (0) or the limit passed (1).
wait_file() {
    local lim=${2:-300} i=0
    while [ ! -e "$1" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e "$1" ]
}
# wait_gone PATH [TENTHS]: PATH no longer exists.
wait_gone() {
    local lim=${2:-300} i=0
    while [ -e "$1" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ ! -e "$1" ]
}
# records_of KEY: "<topic> <queue id> <phys offset>" of every record with UNIQ_KEY KEY.
records_of() {
    "$CTL" dump --store "$STORE" $SMALL commitlog --json 2>"$T/dump.err" |
        perl -MJSON::PP -e 'my $k = shift; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
            print "$j->{topic} $j->{queue_id} $j->{phys_offset}\n" if ($j->{uniq_key} // "") eq $k }' "$1"
}

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

touch "$CRASH/writer-offsets" "$CRASH/writer-hold-repair"
"$HELPERS/sendback_race" --store "$STORE" --topic $TOPIC --queue 2 --group $GROUP \
    --go "$T/go" --timeout 30000 >"$T/race" 2>"$T/race.err" &
RACE=$!
bg_add $RACE
wait_gone "$CRASH/writer-offsets"
ok $? "the writer died after appending the original, before answering it" || diag "$T/shmqd.log"
wait_file "$CRASH/writer-held-repair"
ok $? "its successor waits before the restart repair" || diag "$T/shmqd.log"
WORKER_PIDS="$WORKER_PIDS $(worker_field writer pid)"
touch "$T/go"
wait_file "$T/race" 10
i=0
while ! grep -q '^published copy' "$T/race" && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q '^published copy' "$T/race" && [ -e "$CRASH/writer-held-repair" ]
ok $? "the send-back is in its ring before the repair" || diag "$T/race.err"
rm -f "$CRASH/writer-hold-repair"
wait_pid $RACE 600
ok $? "the original and the send-back are both answered OK" || {
    diag "$T/race"
    diag "$T/race.err"
}
set -- $(awk '$1 == "rings" { print $2, $3 }' "$T/race")
[ -n "$1" ] && [ "$1" -lt "$2" ]
ok $? "the send-back's ring ($1) comes before the original's ($2) in the repair"
KEY=$(awk '$1 == "key" { print $2 }' "$T/race")
grep -E "crash test|journal|answered" "$T/shmqd.log" | sed "s/^/# /"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
records_of "$KEY" >"$T/records"
sed 's/^/# record: /' "$T/records"
is "$(awk -v t=$TOPIC '$1 == t' "$T/records" | wc -l | tr -d ' ')" "1" \
    "the original is stored once in $TOPIC"
is "$(awk '$1 == "SCHEDULE_TOPIC_XXXX" && $2 == 2' "$T/records" | wc -l | tr -d ' ')" "1" \
    "the send-back is stored once, as a delayed message (queue 2)"
orig_phys=$(awk '$1 == "ok" && $2 == "original" { print $5 }' "$T/race")
copy_phys=$(awk '$1 == "ok" && $2 == "copy" { print $5 }' "$T/race")
is "$orig_phys" "$(awk -v t=$TOPIC '$1 == t { print $3 }' "$T/records")" \
    "the original's answer names its record"
is "$copy_phys" "$(awk '$1 == "SCHEDULE_TOPIC_XXXX" { print $3 }' "$T/records")" \
    "the send-back's answer names its own record"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes" || diag "$T/verify"

done_testing
