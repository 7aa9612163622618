#!/bin/sh
# Topic names read from config/topics.json obey the rules a producer's do:
# an entry named "../../x" (or with a space) is dropped at load with a
# warning naming it, the valid topics beside it load, and no directory is
# created outside the store from it.  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
broker_init sec-topics

start_broker
ok $? "shmqd starts on a new store"
"$CTL" send --store "$STORE" $SMALL GoodTopic "hello" >"$T/send.out" 2>&1
ok $? "a message is sent to GoodTopic" || diag "$T/send.out"
stop_broker
ok $? "shmqd stops cleanly"

perl -MJSON::PP -e '
    my $f = shift; open(my $in, "<", $f) or die; local $/; my $j = JSON::PP->new->decode(<$in>);
    my $t = $j->{topicConfigTable};
    for my $bad ("../../x", "a b") {
        $t->{$bad} = { %{ $t->{GoodTopic} }, topicName => $bad };
    }
    open(my $out, ">", $f) or die; print $out JSON::PP->new->pretty->encode($j);' \
    "$STORE/config/topics.json"
grep -q '"\.\./\.\./x"' "$STORE/config/topics.json"
ok $? "topics.json now lists ../../x and \"a b\""

: >"$T/shmqd.log"
start_broker
ok $? "shmqd starts with the bad names in topics.json" || diag "$T/shmqd.log"
grep -q 'topic "\.\./\.\./x".*dropped' "$T/shmqd.log"
ok $? "a warning names ../../x and drops it" || diag "$T/shmqd.log"
grep -q 'topic "a b".*not a valid topic name.*dropped' "$T/shmqd.log"
ok $? "a warning names \"a b\" and drops it"
"$CTL" topic list --store "$STORE" >"$T/topics.out" 2>&1
grep -q GoodTopic "$T/topics.out"
ok $? "GoodTopic is still listed" || diag "$T/topics.out"
! grep -q '\.\./\.\./x\|a b' "$T/topics.out"
ok $? "the bad names are not listed" || diag "$T/topics.out"
stop_broker
ok $? "shmqd stops cleanly"
! grep -q '"\.\./\.\./x"' "$STORE/config/topics.json"
ok $? "the rewritten topics.json no longer lists ../../x"
[ ! -e "$T/x" ] && [ ! -e "$STORE/../x" ]
ok $? "nothing named x was created outside the store"

done_testing
