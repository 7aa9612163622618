#!/bin/sh
# Several producer processes and consumers of two groups at once on a real
# broker with small segments (the CommitLog and the ConsumeQueues roll):
# every acknowledged message is consumed exactly once per group, in queue
# order (queue offsets contiguous per queue), with its body intact and at
# the queue position its producer was told; group offsets are committed;
# after a clean stop verify passes and the CommitLog holds exactly the
# acknowledged messages.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init produce-consume

TOPIC=TopicLoad
NPROD=3
PER=1500

start_broker
ok $? "shmqd starts and reports running" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create $TOPIC --queues 4 >"$T/topic.out" 2>&1
ok $? "topic $TOPIC created with 4 queues" || diag "$T/topic.out"

# Group A: two load_consumer members sharing the queues; group B: shmqctl consume.
# The members stop once the producers are done ($T/producers.done) and
# nothing came for 3 s; group B stops once it has every message.
"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group GA --member 0/2 \
    --stop-file "$T/producers.done" --idle-ms 3000 --max-ms 55000 >"$T/ca0" 2>"$T/ca0.err" &
CA0=$!
"$HELPERS/load_consumer" --store "$STORE" --topic $TOPIC --group GA --member 1/2 \
    --stop-file "$T/producers.done" --idle-ms 3000 --max-ms 55000 >"$T/ca1" 2>"$T/ca1.err" &
CA1=$!
"$CTL" consume --store "$STORE" $SMALL $TOPIC --group GB --json --count $((NPROD * PER)) \
    --timeout 20000 >"$T/cb" 2>"$T/cb.err" &
CB=$!
bg_add "$CA0 $CA1 $CB"

PIDS=""
for i in $(seq 1 $NPROD); do
    extra=""
    [ "$i" -eq 2 ] && extra="--async 16"
    "$HELPERS/load_producer" --store "$STORE" --topic $TOPIC --id "$i" --count $PER \
        --size 100 --size-max 3000 $extra >"$T/p$i" 2>"$T/p$i.err" &
    PIDS="$PIDS $!"
done
bg_add "$PIDS"
i=1
for p in $PIDS; do
    wait_pid "$p" 600
    ok $? "producer $i acknowledged all its messages" || diag "$T/p$i.err"
    is "$(tail -n 1 "$T/p$i")" "DONE $PER 0" "producer $i reports $PER acked, 0 errors"
    i=$((i + 1))
done
touch "$T/producers.done"
TOTAL=$((NPROD * PER))
acked_keys "$T"/p[0-9] >"$T/acked"
is "$(wc -l <"$T/acked" | tr -d ' ')" "$TOTAL" "$TOTAL acknowledged messages"
is "$(uniq -d "$T/acked" | wc -l | tr -d ' ')" "0" "every acknowledgement names a different UNIQ_KEY"

wait_pid $CA0 600
ok $? "group A member 0 found no bad message" || { grep BAD "$T/ca0" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/ca0.err"; }
wait_pid $CA1 600
ok $? "group A member 1 found no bad message" || { grep BAD "$T/ca1" | head -n 5 >"$T/bad"; diag "$T/bad"; diag "$T/ca1.err"; }
wait_pid $CB 600
ok $? "group B (shmqctl consume --count $TOTAL) got $TOTAL messages" || diag "$T/cb.err"

# Group A: the union of both members, exactly once.
cat "$T/ca0" "$T/ca1" | awk '$1 == "MSG" { print $4 }' | sort >"$T/ga"
is "$(wc -l <"$T/ga" | tr -d ' ')" "$TOTAL" "group A consumed $TOTAL messages"
cmp -s "$T/acked" "$T/ga"
ok $? "group A consumed exactly the acknowledged messages, each once"
is "$(cat "$T/ca0" "$T/ca1" | grep -c '^BAD')" "0" "group A: no gap, duplicate, torn or foreign message"

# Group B: shmqctl consume --json.
jfield uniq_key <"$T/cb" | sort >"$T/gb"
cmp -s "$T/acked" "$T/gb"
ok $? "group B consumed exactly the acknowledged messages, each once"
perl -MJSON::PP -e 'my %last; while (<STDIN>) { my $j = JSON::PP->new->decode($_);
    my $q = $j->{queue}; my $want = exists $last{$q} ? $last{$q} + 1 : 0;
    if ($j->{queue_offset} != $want) { print "queue $q: offset $j->{queue_offset}, expected $want\n"; exit 1 }
    $last{$q} = $j->{queue_offset} }' <"$T/cb" >"$T/cb.order"
ok $? "group B saw every queue in order, offsets contiguous from 0" || diag "$T/cb.order"
perl -MJSON::PP -MCompress::Zlib -e 'while (<STDIN>) { my $j = JSON::PP->new->decode($_);
    my $b = $j->{body}; utf8::encode($b);
    $b =~ /\AL1 ([0-9a-f]{8}) ((\d+) (\d+) (\d+)\|(.*))\z/s or exit 1;
    exit 1 unless hex($1) == crc32($2) && length($6) == $5 }' <"$T/cb"
ok $? "group B: every body is intact (CRC and length)"

# Each message sits where its producer was told: same queue and queue offset.
cat "$T"/p[0-9] | awk '$1 == "ACK" { print $2, $5, $6 }' | sort >"$T/ack_pos"
cat "$T/ca0" "$T/ca1" | awk '$1 == "MSG" { print $4, $2, $3 }' | sort >"$T/ga_pos"
cmp -s "$T/ack_pos" "$T/ga_pos"
ok $? "every message was consumed at the queue and offset of its acknowledgement"
# And per producer, the sequence numbers of one queue increase (queue order is send order).
cat "$T/ca0" "$T/ca1" | awk '$1 == "MSG"' | sort -k2,2n -k3,3n |
    awk '{ k = $2 " " $5; if (k in last && $6 <= last[k]) bad++; last[k] = $6 } END { exit bad > 0 }'
ok $? "within a queue, each producer's messages come in the order they were sent"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
"$CTL" verify --store "$STORE" $SMALL >"$T/verify" 2>&1
ok $? "verify passes on the stopped store" || diag "$T/verify"
nseg=$(ls "$STORE/commitlog" | wc -l)
[ "$nseg" -ge 3 ]
ok $? "the CommitLog rolled over several segments ($nseg)"
stored_load_records $TOPIC >"$T/stored"
awk '{ print $1 }' "$T/stored" | sort >"$T/stored_keys"
cmp -s "$T/stored_keys" "$T/acked"
ok $? "the CommitLog holds exactly the acknowledged messages, each once"
is "$(awk '$4 != 1' "$T/stored" | wc -l | tr -d ' ')" "0" "every stored body is intact"
perl -e 'local $/; my $s = <STDIN>; $s =~ s/([{,]\s*)(\d+)(\s*:)/$1"$2"$3/g;
    require JSON::PP; my $j = JSON::PP->new->decode($s); my $ok = 1;
    for my $g ("GA", "GB") { my $o = $j->{offsetTable}{"TopicLoad\@$g"} or exit 1;
        my $sum = 0; $sum += $_ for values %$o; $ok = 0 unless $sum == $ARGV[0] }
    exit($ok ? 0 : 1)' "$TOTAL" <"$STORE/config/consumerOffset.json"
ok $? "consumerOffset.json: both groups committed all $TOTAL messages"

done_testing
