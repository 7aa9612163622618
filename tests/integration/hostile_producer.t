#!/bin/sh
# A hostile producer writes garbage into its ring (absurd part lengths,
# lengths past the tail or the ring, bad magic or kind, oversized topic
# lengths, bad names, a missing UNIQ_KEY, forbidden flags, a tail beyond the
# ring) while good producers send: every bad entry is rejected with the
# expected error completion (or skipped when it names no valid slot),
# nothing of it is appended, the writer never restarts, the hostile ring is
# served again after each case, and the good producers get every message
# acknowledged.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init hostile

if [ ! -x "$HELPERS/hostile_producer" ]; then
    echo "Bail out! $HELPERS/hostile_producer not built"
    exit 1
fi

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
for t in TopicGood HostileOk; do
    "$CTL" topic --store "$STORE" $SMALL create $t --queues 4 >"$T/topic.out" 2>&1
    ok $? "topic $t created" || diag "$T/topic.out"
done
writer0=$(worker_pid writer)
restarts0=$(worker_field writer restarts)

"$HELPERS/load_producer" --store "$STORE" --topic TopicGood --id 1 --count 1000000 --rate 300 \
    --size 100 --size-max 3000 >"$T/p1" 2>"$T/p1.err" &
P1=$!
"$HELPERS/load_producer" --store "$STORE" --topic TopicGood --id 2 --count 1000000 --rate 300 \
    --size 100 --size-max 3000 --async 8 >"$T/p2" 2>"$T/p2.err" &
P2=$!
bg_add "$P1 $P2"
sleep 0.5

"$HELPERS/hostile_producer" --store "$STORE" --ok-topic HostileOk --bad-topic HostileBad \
    >"$T/h" 2>"$T/h.err"
ok $? "the hostile producer's cases all ended as expected" || { grep -v '^OKKEY' "$T/h" >"$T/h.cases"; diag "$T/h.cases"; diag "$T/h.err"; }
# One TAP line per case, so that a failure names it.
grep '^CASE ' "$T/h" >"$T/cases"
while read -r _ name kind expected got rest; do
    case "$rest" in
    *pass) ok 0 "$name ($kind): $expected, then a valid entry is served" ;;
    *) ok 1 "$name ($kind): $expected, then a valid entry is served"
        echo "#   $got $rest" ;;
    esac
done <"$T/cases"
ncases=$(wc -l <"$T/cases" | tr -d ' ')
[ "$ncases" -ge 20 ]
ok $? "the hostile producer ran its cases ($ncases)"
nok=$(grep -c '^OKKEY' "$T/h")
[ "$nok" -ge "$ncases" ]
ok $? "the valid entries were stored ($nok)"

is "$(worker_field writer pid)" "$writer0" "the writer never restarted (same pid)"
is "$(worker_field writer restarts)" "$restarts0" "and its restart count did not change"
# Each entry rejected (with or without a slot to answer) and each region discarded counts once
# in the writer's rejects, and nothing else does (the good producers send nothing wrong): every reject, noslot and fatal case, and each entry of the race and plain-run cases
# that was rejected (how many depends on when the writer copied it).
want=$(awk '$3 == "reject" || $3 == "noslot" || $3 == "fatal" { c++ }
    $3 == "race" || $3 == "run" { for (i = 4; i <= NF; i++) if ($i ~ /^rejected=/) { sub(/^rejected=/, "", $i); c += $i } }
    END { print c + 0 }' "$T/cases")
# The writer publishes its counters after each batch; a status read can miss on a busy
# machine: look again (bounded, 10 s).
i=0
until rejects=$(status_json | jfield rejects) && [ -n "$rejects" ] &&
    [ "$rejects" -ge "$want" ] || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$want" -ge 20 ] && [ -n "$rejects" ] && [ "$rejects" -eq "$want" ]
ok $? "status counts each rejected entry once ($rejects of $want)"

kill -TERM $P1 $P2
wait_pid $P1 300
ok $? "good producer 1 had every send acknowledged" || { grep ERR "$T/p1" | head -n 5 >"$T/bad"; diag "$T/bad"; }
wait_pid $P2 300
ok $? "good producer 2 had every send acknowledged" || { grep ERR "$T/p2" | head -n 5 >"$T/bad"; diag "$T/bad"; }
acked_keys "$T/p1" "$T/p2" >"$T/acked"
[ "$(wc -l <"$T/acked")" -gt 100 ]
ok $? "the good producers were served while the garbage came ($(wc -l <"$T/acked" | tr -d ' ') messages)"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/verify"
"$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump" 2>"$T/dump.err"
ok $? "dump of the stopped store" || diag "$T/dump.err"
jfield topic <"$T/dump" | sort | uniq -c | awk '{ print $2 ":" $1 }' >"$T/topics"
grep -q '^Hostile' "$T/topics" && ! grep -v '^HostileOk:\|^TopicGood:' "$T/topics" | grep -q .
ok $? "no record of any bad entry was appended" || diag "$T/topics"
is "$(grep '^HostileOk:' "$T/topics")" "HostileOk:$nok" "exactly the valid hostile entries were appended"
perl -MJSON::PP -e 'my %want; open(my $f, "<", $ARGV[0]) or exit 1;
    while (<$f>) { $want{$1} = $2 if /^OKKEY (\S+) (\d+)/ }
    my $n = 0; while (<STDIN>) { my $j = JSON::PP->new->decode($_); next unless $j->{topic} eq "HostileOk";
        exit 1 unless defined $want{$j->{uniq_key}} && $want{$j->{uniq_key}} == $j->{phys_offset}; $n++ }
    exit($n == keys %want ? 0 : 1)' "$T/h" <"$T/dump"
ok $? "each valid entry is where its completion said"
stored_load_records TopicGood >"$T/stored"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
cmp -s "$T/acked" "$T/stored_keys"
ok $? "the good producers' acknowledged messages are stored exactly once"

done_testing
