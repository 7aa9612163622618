#!/bin/sh
# Consumers write nothing shared: the control block and the consumer area
# (every group's offsets) are mapped read-only by clients, and an offset is
# committed only through the master's socket, which validates it.  A
# consumer that tries -5, max+2, an unknown queue or topic, or a group name
# with bad characters is refused with a clear error each time; writes
# through its mappings fault (mprotect refused, stores fault,
# /proc/self/mem refused; O_RDWR opens by other users: client_user.t); the store restarts fine
# afterwards and consumerOffset.json holds only the good commits.
# TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
broker_init sec-offsets
HC="$HELPERS/hostile_consumer"

start_broker
ok $? "shmqd starts on a new store" || diag "$T/shmqd.log"
"$CTL" send --store "$STORE" $SMALL TopicB "m" --queue 0 --count 5 >"$T/send.out" 2>&1
ok $? "5 messages are sent to TopicB queue 0" || diag "$T/send.out"
wait_pos dispatched

# refused CASE GROUP TOPIC QUEUE OFFSET REGEX: the commit is refused with a text matching REGEX.
refused() {
    local what=$1 re=$6
    "$HC" commit "$STORE" "$2" "$3" "$4" "$5" >"$T/commit.out" 2>&1
    rc=$?
    [ $rc -eq 3 ] && grep -q -e "$re" "$T/commit.out"
    ok $? "$what: refused ($(head -c 200 "$T/commit.out"))" || diag "$T/commit.out"
}
refused "offset -5" GroupOk TopicB 0 -5 "offset -5 of group GroupOk in TopicB/0 is below 0"
refused "offset max+2" GroupOk TopicB 0 max+2 "offset 7 of group GroupOk in TopicB/0 is above the queue's max offset 5"
refused "offset max+1" GroupOk TopicB 0 max+1 "is above the queue's max offset 5"
refused "an unknown queue" GroupOk TopicB 4000 1 "topic TopicB has no queue 4000"
refused "an unknown topic" GroupOk NoSuchTopic 0 0 "no topic NoSuchTopic"
refused "a group name with a slash" 'Bad/Group' TopicB 0 1 "consumer group name has byte 0x2f at 3"
refused "a group name with a space" 'Bad Group' TopicB 0 1 "consumer group name has byte 0x20"
refused "a queue id below 0" GroupOk TopicB -1 0 "queue id -1 outside 0..65535"

"$HC" commit "$STORE" GroupOk TopicB 0 max >"$T/good.out" 2>&1
ok $? "the group's commit of the queue's max offset is taken" || diag "$T/good.out"
"$HC" commit "$STORE" GroupOk TopicB 0 3 >"$T/good2.out" 2>&1
ok $? "a commit of offset 3 (going back) is taken" || diag "$T/good2.out"

# Send-back topics: a client may ask only for its retry and dead-letter topics.
topic_refused() {
    "$HC" topic "$STORE" "$2" "$3" >"$T/topic.out" 2>&1
    rc=$?
    [ $rc -eq 3 ] && grep -q -e "$4" "$T/topic.out"
    ok $? "topic request $1: refused ($(head -c 200 "$T/topic.out"))" || diag "$T/topic.out"
}
topic_refused "for an ordinary topic" TopicEvil 1 "clients may ask only for retry and dead-letter topics"
topic_refused "with a bad group name" '%RETRY%Bad/G' 1 "consumer group name has byte 0x2f"
topic_refused "for 1000 queues" '%DLQ%GroupOk' 1000 "1000 queues asked for: give 1..64"
"$HC" topic "$STORE" '%RETRY%GroupOk' 1 >"$T/topic.out" 2>&1
ok $? "the group's retry topic is created on request" || diag "$T/topic.out"
"$CTL" topic list --store "$STORE" >"$T/topics.out" 2>&1
grep -q '%RETRY%GroupOk' "$T/topics.out" && ! grep -q 'TopicEvil\|%DLQ%GroupOk' "$T/topics.out"
ok $? "the topic table holds it and none of the refused ones" || diag "$T/topics.out"

"$HC" scribble "$STORE" >"$T/scribble.out" 2>&1
rc=$?
[ $rc -eq 0 ]
ok $? "no write of the control block or the consumer area goes through" || diag "$T/scribble.out"
grep -q "refused consumer area: every store through the mapping faulted" "$T/scribble.out"
ok $? "stores through the consumer area's mapping fault" || diag "$T/scribble.out"
grep -q "refused consumer area: mprotect PROT_WRITE" "$T/scribble.out"
ok $? "the consumer area cannot be made writable" || diag "$T/scribble.out"
grep -q "refused control block: every store through the mapping faulted" "$T/scribble.out"
ok $? "stores through the control block's mapping fault" || diag "$T/scribble.out"
grep -q "refused consumer area: shmq_ctl_offset_set: .*read-only here" "$T/scribble.out"
ok $? "a direct table write through a client's handle is refused" || diag "$T/scribble.out"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
perl -MJSON::PP -e '
    local $/; my $j = JSON::PP->new->decode(<STDIN>);
    my $t = $j->{offsetTable} || {};
    my $bad = 0;
    for my $k (keys %$t) {
        for my $q (keys %{ $t->{$k} }) {
            my $v = $t->{$k}{$q};
            $bad++ if $v < 0 || $k !~ /^[A-Za-z0-9%_|-]+\@[A-Za-z0-9%_|-]+$/;
        }
    }
    my $good = $t->{"TopicB\@GroupOk"};
    exit(!$bad && $good && $good->{0} == 3 && !exists $t->{"TopicB\@HostileGroup"} ? 0 : 1)' \
    <"$STORE/config/consumerOffset.json"
ok $? "consumerOffset.json holds GroupOk at 3 and no refused value" ||
    diag "$STORE/config/consumerOffset.json"
: >"$T/shmqd.log"
start_broker
ok $? "shmqd starts again afterwards" || diag "$T/shmqd.log"
! grep -qi "warn.*consumerOffset" "$T/shmqd.log"
ok $? "no warning about consumerOffset.json at start" || diag "$T/shmqd.log"
stop_broker
ok $? "shmqd stops cleanly again"

done_testing
