#!/bin/sh
# Consumer group administration: shmqctl group progress shows, per queue, the
# queue's max offset, the group's committed offset and the lag (max minus
# committed) exactly, on a running and on a stopped store; offsets reset on a
# stopped store moves the group to earliest, latest, a clamped offset or the
# first message stored at or after a time, and the next consume reads exactly
# those messages; the same on a running store;
# group delete removes the group's offsets (running and stopped); bad inputs
# (unknown group, bad --to, a negative offset, a missing topic or queue) get a
# clear error and leave consumerOffset.json as it was.  On a running store
# offsets reset moves a running shmqctl consume of the group to the new
# offsets without a restart.
# TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init group-admin

C="$STORE/config/consumerOffset.json"

# consume GROUP COUNT: read up to COUNT messages of TopicG as GROUP (JSON lines in $T/c.out);
# prints how many were read.
consume() {
    "$CTL" consume --store "$STORE" $SMALL TopicG --group "$1" --from first --count "$2" --json \
        --timeout 1500 >"$T/c.out" 2>"$T/c.err"
    grep -c '^{' "$T/c.out"
}
# read_set: the "queue:offset:body" of every message of the last consume, sorted.
read_set() {
    perl -MJSON::PP -ne 'my $j = decode_json($_); print "$j->{queue}:$j->{queue_offset}:$j->{body}\n"' \
        "$T/c.out" | sort
}
# progress GROUP: "topic/queue max committed lag" lines of group progress --json.
progress() {
    "$CTL" group --store "$STORE" $SMALL progress "$1" --json >"$T/p.out" 2>"$T/p.err" || return 1
    perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>);
        print "$_->{topic}/$_->{queue} $_->{max_offset} $_->{committed} $_->{lag}\n" for @{$j->{queues}};
        print "total $j->{total_lag}\n"' <"$T/p.out"
}
reset_to() {
    "$CTL" offsets --store "$STORE" $SMALL reset --group G --topic TopicG "$@" >"$T/r.out" 2>"$T/r.err"
}

start_broker
ok $? "shmqd starts on a new store" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicG --queues 4 >"$T/topic.out" 2>&1
ok $? "TopicG is created with 4 queues" || diag "$T/topic.out"
"$CTL" send --store "$STORE" $SMALL TopicG "b1" --count 20 >"$T/send.out" 2>&1
ok $? "20 messages (body b1) are sent" || diag "$T/send.out"
sleep 0.2
TS=$(now_ms)
sleep 0.2
"$CTL" send --store "$STORE" $SMALL TopicG "b2" --count 8 >"$T/send2.out" 2>&1
ok $? "8 more (body b2) are sent after a recorded time" || diag "$T/send2.out"

is "$(consume G 6)" "6" "group G reads 6 messages"
# Expected committed offset per queue: one past the highest offset read there.
EXP=$(perl -MJSON::PP -ne 'my $j = decode_json($_); $c{$j->{queue}} = $j->{queue_offset} + 1
        if $j->{queue_offset} + 1 > ($c{$j->{queue}} // 0);
    END { my $t = 0; for my $q (0..3) { my $o = $c{$q} // 0; $t += 7 - $o; print "TopicG/$q 7 $o ", 7 - $o, "\n" }
        print "total $t\n" }' "$T/c.out")
is "$(progress G | grep -v '^total')" "$(echo "$EXP" | perl -ne 'print unless /^total/ || / 7 0 7$/')" \
    "running: progress shows max 7, the committed offset and the lag of every queue G committed"
is "$(progress G | grep '^total')" "total $(echo "$EXP" | perl -ane '$t += $F[3] if /^TopicG/ && $F[2] > 0; END { print $t + 0 }')" \
    "running: G's total lag is the sum of the lags of the queues it committed"

"$CTL" status --store "$STORE" $SMALL --json >"$T/s.out" 2>"$T/s.err"
is "$(perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); print $j->{groups}{G} // "none"' <"$T/s.out")" \
    "$(progress G | sed -n 's/^total //p')" "status --json: groups.G is G's total lag" || diag "$T/s.err"
is "$(consume G2 3)" "3" "group G2 reads 3 messages"
# ---- running store: reset, and a running consumer of G follows it ----
reset_to --to earliest
ok $? "offsets reset to earliest on the running store" || diag "$T/r.err"
is "$(progress G | grep -v total | awk '{print $3}' | tr '\n' ' ')" "0 0 0 0 " \
    "running: every queue of G is committed at 0"
"$CTL" consume --store "$STORE" $SMALL TopicG --group G --json --timeout 4000 \
    >"$T/bg.out" 2>"$T/bg.err" &
BG=$!
bg_add $BG
# committed OFFSETS: wait (bounded) until G's committed offsets are OFFSETS ("7 7 7 7 ").
committed() {
    progress G | grep -v total | awk '{print $3}' | tr '\n' ' '
}
wait_committed() {
    i=0
    while [ "$(committed)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(committed)" = "$1" ]
}
wait_committed "7 7 7 7 "
ok $? "a running consumer of G reads to the end of every queue from the reset" || diag "$T/p.out"
reset_to --to 2 --queue 3
ok $? "reset G's queue 3 to offset 2 while the consumer runs" || diag "$T/r.err"
wait_committed "7 7 7 7 "
ok $? "the consumer reads queue 3 again and commits it to its end" || diag "$T/p.out"
wait $BG
is "$(count_lines '^{' "$T/bg.out")" "33" "the consumer read 28 messages, then 5 again" || diag "$T/bg.err"
is "$(tail -n +29 "$T/bg.out" | perl -MJSON::PP -ne 'my $j = decode_json($_); print "$j->{queue}:$j->{queue_offset} "')" \
    "3:2 3:3 3:4 3:5 3:6 " "the five again are queue 3's offsets 2 to 6" || diag "$T/bg.out"
RUN_PROGRESS=$(progress G)
"$CTL" offsets --store "$STORE" $SMALL reset --group NoSuch --topic TopicG --to earliest \
    >"$T/r.out" 2>"$T/r.err"
is "$?" "1" "running: reset of an unknown group: exit 1"
"$CTL" offsets --store "$STORE" $SMALL reset --group G --topic NoTopic --to earliest \
    >"$T/r.out" 2>"$T/r.err"
is "$?" "1" "running: reset in a missing topic: exit 1"
grep -q "no topic NoTopic" "$T/r.err"
ok $? "... naming the topic" || diag "$T/r.err"
is "$(progress G)" "$RUN_PROGRESS" "running: the refused resets changed no offset of G"

"$CTL" group --store "$STORE" $SMALL delete G2 >"$T/d.out" 2>"$T/d.err"
ok $? "group delete G2 on the running store succeeds" || diag "$T/d.err"
progress G2 >/dev/null
is "$?" "1" "running: G2 has no offsets after the delete"
grep -q "no offsets of group G2" "$T/p.err"
ok $? "progress of a deleted group says it has no offsets" || diag "$T/p.err"

stop_broker
ok $? "shmqd stops cleanly and saves the offsets" || diag "$T/shmqd.log"
grep -q 'G2' "$C"
is "$?" "1" "the saved consumerOffset.json holds no offset of G2"
is "$(progress G)" "$RUN_PROGRESS" "stopped: progress shows the same numbers from the files"

# ---- bad inputs change nothing ----
cp "$C" "$T/saved"
"$CTL" offsets --store "$STORE" $SMALL reset --group NoSuch --topic TopicG --to earliest \
    >"$T/r.out" 2>"$T/r.err"
is "$?" "1" "reset of an unknown group: exit 1"
grep -q "no offsets of group NoSuch" "$T/r.err"
ok $? "... saying the group has no offsets" || diag "$T/r.err"
reset_to --to sometime
is "$?" "2" "reset --to sometime: usage error"
grep -q "\-\-to: expected earliest, latest" "$T/r.err"
ok $? "... naming what --to takes" || diag "$T/r.err"
reset_to --to -3
is "$?" "2" "reset --to -3 (negative offset): usage error"
"$CTL" offsets --store "$STORE" $SMALL reset --group G --topic NoTopic --to earliest \
    >"$T/r.out" 2>"$T/r.err"
is "$?" "1" "reset in a missing topic: exit 1"
grep -q "no topic NoTopic" "$T/r.err"
ok $? "... naming the topic" || diag "$T/r.err"
reset_to --to earliest --queue 9
is "$?" "1" "reset of queue 9 of a 4-queue topic: exit 1"
"$CTL" group --store "$STORE" $SMALL progress NoSuch >"$T/p.out" 2>"$T/p.err"
is "$?" "1" "progress of an unknown group: exit 1"
cmp -s "$C" "$T/saved"
ok $? "consumerOffset.json is unchanged by the refused commands"

# ---- stopped store resets, checked by the next consume ----
reset_to --to earliest
ok $? "reset G to earliest" || diag "$T/r.err"
is "$(progress G | grep -v total | awk '{print $3}' | tr '\n' ' ')" "0 0 0 0 " \
    "every queue of G is committed at 0"
reset_to --to "@$TS"
ok $? "reset G to the time between the two sends" || diag "$T/r.err"
is "$(progress G | grep -v total | awk '{print $3}' | tr '\n' ' ')" "5 5 5 5 " \
    "every queue of G is committed at its first b2 message (5)"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
progress G2 >/dev/null
is "$?" "1" "G2, deleted on the running store, has no offsets after a restart" || diag "$T/p.out"
is "$(consume G 100)" "8" "after the time reset G reads exactly 8 messages"
is "$(read_set | grep -c ':b2$')" "8" "... all of them the b2 messages"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"

reset_to --to 3 --queue 1
ok $? "reset G's queue 1 to offset 3" || diag "$T/r.err"
reset_to --to 999 --queue 2
ok $? "reset G's queue 2 to offset 999" || diag "$T/r.err"
is "$(progress G | grep -v total | awk '{print $3}' | tr '\n' ' ')" "7 3 7 7 " \
    "queue 1 is at 3, queue 2 clamped to its max 7, the others unchanged"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
is "$(consume G 100)" "4" "G reads exactly 4 messages"
is "$(read_set | cut -d: -f1,2 | tr '\n' ' ')" "1:3 1:4 1:5 1:6 " "... queue 1's offsets 3 to 6"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"

reset_to --to earliest && reset_to --to latest
ok $? "reset G to earliest, then to latest" || diag "$T/r.err"
is "$(progress G | grep total)" "total 0" "G's total lag is 0 at latest"
"$CTL" group --store "$STORE" $SMALL delete G >"$T/d.out" 2>"$T/d.err"
ok $? "group delete G on the stopped store" || diag "$T/d.err"
grep -q 'TopicG@G"' "$C"
is "$?" "1" "consumerOffset.json holds no offset of G"
"$CTL" group --store "$STORE" $SMALL delete G >"$T/d.out" 2>"$T/d.err"
is "$?" "1" "deleting it again: exit 1 (no offsets)" || diag "$T/d.out"
start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
is "$(consume G 100)" "28" "G, deleted, starts again from the first message (--from first)"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
