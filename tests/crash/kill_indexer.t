#!/bin/sh
# Kill the indexer again and again while producers send messages with
# several keys: at each step of a put (SHMQ_TEST_CRASH_DIR, see
# daemons/indexer.c: entry written, slot set, header set, between a
# message's UNIQ_KEY and its KEYS) and with plain kill -9.  Then kill the
# master and every worker at once: the next start is abnormal, index files
# newer than the checkpoint's index time are dropped and rebuilt from the
# CommitLog.  After each phase every acknowledged message is found by its
# UNIQ_KEY and by its own KEYS token exactly once, with exactly one index
# entry each (nothing lost, nothing indexed twice).
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init kill-indexer

TOPIC=TopicKeys
# Small index files: about 100 messages (4 entries each) a file.
INDEX="--set maxHashSlotNum=97 --set maxIndexNum=400"
CRASH="$T/crash"
mkdir -p "$CRASH"
SHMQ_TEST_CRASH_DIR="$CRASH"
export SHMQ_TEST_CRASH_DIR

# check_index LABEL: every acknowledged message once by UNIQ_KEY and by its k token.
check_index() {
    awk '$1 == "ACK" { print $2 }' "$T"/p* | sort -u >"$T/uniqs"
    awk '$1 == "ACK" { print $3 }' "$T"/p* | sort -u >"$T/keys"
    "$HELPERS/index_check" --store "$STORE" --topic $TOPIC $SMALL $INDEX <"$T/uniqs" \
        >"$T/check.u" 2>"$T/check.err"
    "$HELPERS/index_check" --store "$STORE" --topic $TOPIC --key $SMALL $INDEX <"$T/keys" \
        >"$T/check.k" 2>>"$T/check.err"
    local nu nk
    nu=$(wc -l <"$T/uniqs" | tr -d ' ')
    nk=$(wc -l <"$T/check.k" | tr -d ' ')
    [ "$nu" -gt 100 ]
    ok $? "$1: many messages acknowledged ($nu)"
    is "$(awk '$2 != 1 || $3 != 1' "$T/check.u" | wc -l | tr -d ' ')" "0" \
        "$1: each UNIQ_KEY finds its message once, with one index entry" ||
        { awk '$2 != 1 || $3 != 1' "$T/check.u" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/check.err"; }
    is "$(awk '$2 != 1 || $3 != 1' "$T/check.k" | wc -l | tr -d ' ')" "0" \
        "$1: each KEYS token ($nk) finds its message once, with one index entry" ||
        { awk '$2 != 1 || $3 != 1' "$T/check.k" | head -n 5 >"$T/bad"; diag "$T/bad"; }
}

# crash_steps: kill the indexer at each step of a put; count the restarts.
crash_steps() {
    local step old i restarted=0
    for step in entry slot header key; do
        old=$(worker_pid indexer)
        touch "$CRASH/indexer-$step"
        i=0
        while [ -e "$CRASH/indexer-$step" ] && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if [ ! -e "$CRASH/indexer-$step" ] && wait_restarted indexer "$old" 150; then
            restarted=$((restarted + 1))
        fi
        rm -f "$CRASH/indexer-$step"
    done
    echo "$restarted"
}

start_broker $INDEX
ok $? "shmqd starts with the indexer" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic created" || diag "$T/topic.out"

"$HELPERS/key_producer" --store "$STORE" --topic $TOPIC --id 1 --count 1000000 --rate 400 \
    --timeout 20000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/key_producer" --store "$STORE" --topic $TOPIC --id 2 --count 1000000 --rate 400 \
    --timeout 20000 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$P1 $P2"
sleep 0.5

is "$(crash_steps)" "4" "the indexer was killed at each step of a put and came back"
restarted=0
for k in 1 2; do
    old=$(worker_pid indexer)
    kill -KILL "$old" 2>/dev/null
    wait_restarted indexer "$old" 150 && restarted=$((restarted + 1))
    sleep 0.3
done
is "$restarted" "2" "the indexer came back after kill -9 at random points"
grep -c "crash test: killed at step" "$T/shmqd.log" >"$T/n"
is "$(cat "$T/n")" "4" "the indexer logged each crash point"
grep -q "partly indexed: indexing it again" "$T/shmqd.log"
ok $? "a restarted indexer found a partly indexed message" || diag "$T/shmqd.log"
grep -q "[1-9][0-9]* half-written entr[a-z]* undone" "$T/shmqd.log"
ok $? "a restarted indexer reported its repair" || diag "$T/shmqd.log"

# Phase 1 check with the producers paused at a consistent point: stop them.
kill -TERM $P1 $P2
wait_pid $P1 300
wait_pid $P2 300
wait_pos indexed 150
ok $? "the indexer caught up (indexed = wrote)"
check_index "after the indexer kills"

# Phase 2: kill everything; the next start is abnormal.
"$HELPERS/key_producer" --store "$STORE" --topic $TOPIC --id 3 --count 1000000 --rate 400 \
    --timeout 20000 >"$T/p3" 2>"$T/p3.err" &
P3=$!
bg_add "$P3"
sleep 1.5
kill_store_all && [ -e "$STORE/abort" ]
ok $? "master and workers killed; abort stayed"
echo "---- restart ----" >>"$T/shmqd.log"
start_broker $INDEX
ok $? "shmqd starts again over the killed store" || diag "$T/shmqd.log"
sed -n '/---- restart ----/,$p' "$T/shmqd.log" | grep "index recovery (abnormal)" >"$T/irec"
dropped=$(sed 's/.*dropped \([0-9]*\) index.*/\1/' "$T/irec")
[ -n "$dropped" ] && [ "$dropped" -ge 1 ]
ok $? "the master dropped the index files newer than the checkpoint ($dropped)" ||
    diag "$T/shmqd.log"

# The producer rides through the restart; more indexer kills on the rebuilt index.
is "$(crash_steps)" "4" "after the abnormal start: killed at each step again"
kill -TERM $P3
wait_pid $P3 300
grep -q '^DONE' "$T/p3"
ok $? "the third producer ended cleanly" || diag "$T/p3.err"
wait_pos indexed 150
ok $? "the indexer caught up after the abnormal start"
check_index "after the abnormal start and rebuild"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
check_index "on the stopped store"

done_testing
