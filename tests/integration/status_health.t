#!/bin/sh
# shmqctl status tells a store that serves from one that does not:
#   1. while the master recovers the store (held there by a slow sync of the
#      CommitLog), status says it is starting, names the master, and --json
#      gives state "recovering" (exit 1), not "not running", with how far
#      recovery is: the sync phase, every byte of the log checked, none
#      synced yet; the text form says the same;
#   2. a healthy store: "health: ok", exit 0;
#   3. a worker whose loop stopped turning (SIGSTOP) is shown "stale", not
#      running, with the reason, and status exits 1 until it runs again.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init status-health

SHIM="$BUILD/tests/fault/libfail_sync.so"

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicS --queues 2 >"$T/topic.out" 2>&1
"$HELPERS/load_producer" --store "$STORE" --topic TopicS --id 1 --count 2000 --size 1000 \
    >"$T/p1" 2>"$T/p1.err"
ok $? "2000 messages sent (a log to check at the next start)" || diag "$T/p1.err"
WROTE=$(status_json | perl -MJSON::PP -e 'local $/; print JSON::PP->new->decode(<STDIN>)->{positions}{wrote}')
stop_broker
ok $? "and stops (a store to recover)" || diag "$T/shmqd.log"

# ---- 1. recovering ---------------------------------------------------------------------------
# The master's first sync of a CommitLog file takes 6 s: it is inside its start (recovery's
# sync of the checked log), holding the lock.
LD_PRELOAD="$SHIM" SHMQ_FAULT_PROG=shmqd SHMQ_FAULT_PATH="$STORE/commitlog" SHMQ_FAULT_DELAY_MS=6000 \
    SHMQ_FAULT_MARK="$T/slow.mark" "$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
i=0
while [ ! -e "$T/slow.mark" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$T/slow.mark" ]
ok $? "the master is held in a slow sync ($(cat "$T/slow.mark" 2>/dev/null))"
"$CTL" status --store "$STORE" $SMALL >"$T/st1.out" 2>&1
rc=$?
state_now=$(status_json | jfield state)
is "$rc" "1" "status of a recovering store exits 1"
grep -q "is starting: its master (pid $SHMQD_PID) is recovering the store" "$T/st1.out"
ok $? "status says the store is starting and names its master" || diag "$T/st1.out"
is "$state_now" "recovering" "status --json gives state recovering"
# The scan starts at a segment boundary (the checkpoint's segment) and runs to the end of the
# files; the sync covers the scanned log, from that boundary to the end of the last record.
status_json >"$T/st1.json"
perl -MJSON::PP -e 'local $/; my $r = JSON::PP->new->decode(<STDIN>)->{recovery} or exit 1;
    my ($sc, $sy, $w, $seg) = ($r->{scan}, $r->{sync}, $ARGV[0], 1048576);
    exit !($r->{phase} eq "sync" && $sc->{total} > 0 && $sc->{done} == $sc->{total} &&
        $sc->{total} % $seg == 0 && $sy->{done} == 0 && $sy->{total} > 0 &&
        ($w - $sy->{total}) % $seg == 0 && !$r->{abnormal})' "$WROTE" <"$T/st1.json"
ok $? "--json: recovery in phase sync, the whole log checked, nothing synced yet (wrote $WROTE)" ||
    diag "$T/st1.json"
grep -q "^recovery:  phase sync: CommitLog checked \([0-9]*\) of \1 bytes (100%), synced 0 of [1-9][0-9]* bytes (0%)$" "$T/st1.out"
ok $? "the text form shows the same progress" || diag "$T/st1.out"
wait_state running 300 && wait_workers 300
ok $? "the store runs once the sync returns" || diag "$T/shmqd.log"

# ---- 2. healthy ------------------------------------------------------------------------------
"$CTL" status --store "$STORE" $SMALL >"$T/st2.out" 2>&1
ok $? "status of a healthy store exits 0" || diag "$T/st2.out"
grep -q "^health: *ok$" "$T/st2.out"
ok $? "and says health ok" || diag "$T/st2.out"
is "$(status_json | jfield healthy)" "1" "--json: healthy true"

# ---- 3. a stale worker -----------------------------------------------------------------------
CLEANER=$(status_json | perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
    print map { $_->{name} eq "cleaner" ? $_->{pid} : () } @{$j->{workers}}')
[ -n "$CLEANER" ] && kill -STOP "$CLEANER"
ok $? "the cleaner (pid $CLEANER) is stopped with SIGSTOP"
i=0
while [ $i -lt 300 ]; do
    "$CTL" status --store "$STORE" $SMALL >"$T/st3.out" 2>&1 || break
    sleep 0.1
    i=$((i + 1))
done
grep -q "^  cleaner .* stale " "$T/st3.out"
ok $? "status shows the cleaner stale, not running" || diag "$T/st3.out"
grep -q "^health: *NOT OK: the cleaner's heartbeat is [0-9.]* s old" "$T/st3.out"
ok $? "and says why the store is not healthy" || diag "$T/st3.out"
"$CTL" status --store "$STORE" $SMALL >/dev/null 2>&1
is "$?" "1" "status exits 1 while a worker is stale"
is "$(status_json | jfield healthy)" "0" "--json: healthy false"
kill -CONT "$CLEANER"
i=0
until "$CTL" status --store "$STORE" $SMALL >"$T/st4.out" 2>&1 || [ $i -ge 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q "^health: *ok$" "$T/st4.out"
ok $? "healthy again once the cleaner runs (SIGCONT)" || diag "$T/st4.out"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

done_testing
