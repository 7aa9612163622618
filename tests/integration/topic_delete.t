#!/bin/sh
# shmqctl topic delete removes a topic's consume queues and every group's
# offsets of it, not only its configuration: a topic created again with the
# same name starts at queue offset 0, and neither an old group nor a new one
# is handed a message of the deleted topic -- on the running store, after a
# restart, after an unclean stop (recovery rebuilds no old unit), on a
# stopped store, and when the dispatcher, shmqctl or the whole store is
# killed in the middle of a deletion; a delayed message sent before the
# deletion is not delivered to the new topic when due.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init topic-delete

ctl() {
    local c=$1
    shift
    "$CTL" "$c" --store "$STORE" $SMALL "$@"
}
# send TOPIC PREFIX COUNT: COUNT messages "PREFIX-i"; their SEND_OK lines in $T/sent.
send_n() {
    local i=1
    : >"$T/sent"
    while [ $i -le "$3" ]; do
        "$CTL" send --store "$STORE" $SMALL "$1" "$2-$i" >>"$T/sent" 2>&1 || return 1
        i=$((i + 1))
    done
}
# bodies TOPIC GROUP: the bodies a consumer of GROUP gets, sorted, one per line.
bodies() {
    "$CTL" consume --store "$STORE" $SMALL "$1" --group "$2" --json --timeout 600 2>"$T/consume.err" |
        jfield body | sort
}
old_count() {
    grep -c '^old' | tr -d ' '
}
# consumerOffset.json keys of topic $1, one per line ($2: another file, e.g. the .bak).
offset_keys() {
    perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 0;
        my $j = JSON::PP->new->decode(<$f>);
        print "$_\n" for grep { /^\Q$ARGV[1]\E@/ } keys %{$j->{offsetTable}}' \
        "${2:-$STORE/config/consumerOffset.json}" "$1"
}
cut_of() {
    perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or do { print "none\n"; exit };
        my $v = JSON::PP->new->decode(<$f>)->{topicDeletes}{$ARGV[1]};
        print defined $v ? $v : "none", "\n"' "$STORE/config/topicDeletes.json" "$1"
}
# check_fresh TOPIC LABEL: new groups and G1 see exactly the new messages.
check_fresh() {
    local b
    b=$(bodies "$1" "Gnew$n")
    is "$(printf '%s\n' "$b" | grep -c '^new')" "3" "$2: a new group gets the 3 new messages"
    is "$(printf '%s\n' "$b" | old_count)" "0" "$2: and no message of the deleted topic"
}
# recreate_and_check TOPIC LABEL: create the topic again, send 3 new messages, check_fresh.
recreate_and_check() {
    ctl topic create "$1" >"$T/out" 2>&1
    ok $? "$1 is created again" || diag "$T/out"
    send_n "$1" new 3
    check_fresh "$1" "$2"
}

ctl topic create TD --queues 2 >"$T/out" 2>&1
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"

# ---- delete on a running store, create again --------------------------------------
send_n TD old 10
ok $? "10 messages sent to TD" || diag "$T/sent"
is "$(bodies TD G1 | old_count)" "10" "group G1 consumes them (and commits its offsets)"
i=0
while [ "$(offset_keys TD | grep -c .)" != 1 ] && [ $i -lt 150 ]; do
    sleep 0.1 # the flusher saves the offsets every 5 s
    i=$((i + 1))
done
is "$(offset_keys TD | grep -c .)" "1" "consumerOffset.json holds G1's offsets of TD"
ctl topic delete TD >"$T/out" 2>&1
ok $? "topic delete TD" || diag "$T/out"
[ ! -e "$STORE/consumequeue/TD" ]
ok $? "its consume queues are removed"
is "$(offset_keys TD | grep -c .)" "0" "and every group's offsets of it"
is "$(offset_keys TD "$STORE/config/consumerOffset.json.bak" | grep -c .)" "0" \
    "the .bak too (a load restores from it an offset the file lacks)"
cut=$(cut_of TD)
[ "$cut" -ge 0 ] 2>/dev/null
ok $? "its cut is recorded in topicDeletes.json ($cut)"
ctl topic create TD --queues 2 >"$T/out" 2>&1
ok $? "topic create TD again" || diag "$T/out"
send_n TD new 3
ok $? "3 messages sent to the new TD" || diag "$T/sent"
is "$(grep -c 'queueOffset=0 ' "$T/sent")" "$(sed -n 's/.* queue=\([0-9]*\) .*/\1/p' "$T/sent" | sort -u | wc -l | tr -d ' ')" \
    "each queue of the new topic starts at queue offset 0"
b=$(bodies TD G1)
is "$(printf '%s\n' "$b" | grep -c '^new')" "3" "old group G1 gets the 3 new messages"
is "$(printf '%s\n' "$b" | old_count)" "0" "and none of the deleted topic"
check_fresh TD "running store"

# ---- restart, and an unclean stop ----------------------------------------------------------
stop_broker
ok $? "shmqd stops" || diag "$T/shmqd.log"
start_broker
ok $? "shmqd starts again" || diag "$T/shmqd.log"
check_fresh TD "after a restart"
is "$(bodies TD G1 | grep -c .)" "0" "G1 kept its offsets of the new topic"
note_workers
kill -KILL "$SHMQD_PID" $(all_worker_pids) 2>/dev/null
wait "$SHMQD_PID" 2>/dev/null
SHMQD_PID=""
sleep 0.5
# Recovery scans the whole log and rebuilds TD's queues from it: every old record passes by.
rm -rf "$STORE/checkpoint" "$STORE/consumequeue/TD"
start_broker
ok $? "shmqd starts after an unclean stop" || diag "$T/shmqd.log"
check_fresh TD "after abnormal recovery"

# ---- the dispatcher killed in the middle of a deletion ------------------------------------------
send_n TE old 5
dpid=$(worker_pid dispatcher)
kill -STOP "$dpid"
"$CTL" topic --store "$STORE" $SMALL delete TE >"$T/del" 2>&1 &
del=$!
bg_add $del
sleep 0.5
alive $del
ok $? "the deletion waits for the dispatcher"
kill -KILL "$dpid"
kill -CONT "$dpid" 2>/dev/null
wait_restarted dispatcher "$dpid" 300
ok $? "the dispatcher is restarted"
wait_pid $del 400
ok $? "and the deletion completes" || diag "$T/del"
[ ! -e "$STORE/consumequeue/TE" ]
ok $? "TE's consume queues are removed"
recreate_and_check TE "dispatcher killed"

# ---- shmqctl killed in the middle: the next delete finishes it --------------------------------
send_n TF old 5
bodies TF G1 >/dev/null
dpid=$(worker_pid dispatcher)
kill -STOP "$dpid"
"$CTL" topic --store "$STORE" $SMALL delete TF >"$T/del" 2>&1 &
del=$!
bg_add $del
sleep 0.5
kill -KILL $del
wait $del 2>/dev/null
kill -CONT "$dpid"
ctl topic create TF >"$T/out" 2>&1
is "$?" "1" "TF cannot be created while its deletion is unfinished"
grep -q "being deleted" "$T/out"
ok $? "and the refusal says why" || diag "$T/out"
"$CTL" send --store "$STORE" $SMALL TF new-x >"$T/out" 2>&1
[ $? -ne 0 ] && ! grep -q SEND_OK "$T/out"
ok $? "a send does not create it meanwhile either" || diag "$T/out"
ctl topic delete TF >"$T/out" 2>&1
ok $? "topic delete TF again finishes the deletion" || diag "$T/out"
is "$(offset_keys TF | grep -c .)" "0" "TF's offsets are gone"
recreate_and_check TF "shmqctl killed"

# ---- the whole store killed in the middle: the next start finishes it ---------------------------
send_n TG old 5
dpid=$(worker_pid dispatcher)
note_workers
kill -STOP "$dpid"
"$CTL" topic --store "$STORE" $SMALL delete TG >"$T/del" 2>&1 &
del=$!
bg_add $del
sleep 0.5
kill -KILL $del "$SHMQD_PID" $(all_worker_pids) 2>/dev/null
kill -CONT "$dpid" 2>/dev/null
wait $del "$SHMQD_PID" 2>/dev/null
SHMQD_PID=""
sleep 0.5
is "$(cut_of TG)" "-1" "topicDeletes.json shows the deletion in progress"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
[ "$(cut_of TG)" -ge 0 ] 2>/dev/null && [ ! -e "$STORE/consumequeue/TG" ]
ok $? "the start finished the deletion" || diag "$T/shmqd.log"
ctl topic list >"$T/out" 2>&1
! grep -q '^TG ' "$T/out"
ok $? "TG is not listed" || diag "$T/out"
recreate_and_check TG "store killed"

# ---- a stopped store ------------------------------------------------------------------------
send_n TH old 5
bodies TH G1 >/dev/null
stop_broker
ok $? "shmqd stops" || diag "$T/shmqd.log"
ctl topic delete TH >"$T/out" 2>&1
ok $? "topic delete on a stopped store" || diag "$T/out"
[ ! -e "$STORE/consumequeue/TH" ]
ok $? "removes the consume queues"
is "$(offset_keys TH | grep -c .)" "0" "and the offsets"
ctl topic create TH >"$T/out" 2>&1
ok $? "TH is created again on the stopped store" || diag "$T/out"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
send_n TH new 3
check_fresh TH "stopped store"
is "$(bodies TH G1 | old_count)" "0" "G1 gets no old message of TH"

# ---- a delayed message sent before the deletion is not delivered to the new topic -----------
send_n TJ old 1
"$CTL" send --store "$STORE" $SMALL TJ old-delayed --delay-level 2 >"$T/out" 2>&1
ok $? "a message to TJ delayed 5 s" || diag "$T/out"
ctl topic delete TJ >"$T/out" 2>&1 && ctl topic create TJ >>"$T/out" 2>&1
ok $? "TJ deleted and created again before it is due" || diag "$T/out"
send_n TJ new 3
sleep 7
check_fresh TJ "delayed message"

# ---- refusals --------------------------------------------------------------------------------
ctl topic delete SCHEDULE_TOPIC_XXXX >"$T/out" 2>&1
is "$?" "2" "the scheduler's topic cannot be deleted"
ctl topic delete NoSuchTopic >"$T/out" 2>&1
is "$?" "1" "deleting a missing topic fails"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
