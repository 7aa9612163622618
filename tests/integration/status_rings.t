#!/bin/sh
# shmqctl status names the broker (brokerName, brokerClusterName, brokerId)
# and shows each producer ring that is not free: an attached
# producer's ring as active with its pid and uid; after the producer is
# killed while the writer is stopped, the ring as orphaned with what it
# published not yet taken; once the writer runs again, the ring is drained
# and freed, and the message the dead producer published is stored.  TAP
# output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
broker_init status-rings

start_broker --set brokerName=broker-r --set brokerClusterName=ClusterR --set brokerId=0
ok $? "shmqd runs" || diag "$T/shmqd.log"
"$CTL" status --store "$STORE" >"$T/status0.txt" 2>&1
grep -qx "broker: broker-r, cluster ClusterR, id 0" "$T/status0.txt"
ok $? "status names the broker: brokerName, brokerClusterName, brokerId" || diag "$T/status0.txt"
is "$(status_json | perl -MJSON::PP -e 'local $/; my $b = JSON::PP->new->decode(<STDIN>)->{broker};
    print "$b->{name} $b->{cluster} $b->{id}"')" "broker-r ClusterR 0" "and so does status --json"

# ring_field PID FIELD: FIELD of the ring whose producer is PID ("" when there is none).
ring_field() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
        for my $r (@{$j->{rings}}) { if ($r->{pid} == $ARGV[0]) { print $r->{$ARGV[1]}; exit 0 } }' \
        "$1" "$2"
}
# wait_ring PID FIELD VALUE: until the ring of PID shows FIELD = VALUE (at most 20 s).
wait_ring() {
    local i=0
    while [ "$(ring_field "$1" "$2")" != "$3" ] && [ $i -lt 200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(ring_field "$1" "$2")" = "$3" ]
}

"$HELPERS/send_wait" --store "$STORE" --topic TopicR --async --go-file "$T/go" \
    >"$T/p.out" 2>"$T/p.err" &
P=$!
bg_add $P
i=0
while ! grep -q '^attached' "$T/p.out" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
wait_ring $P state active
ok $? "an attached producer's ring is active, with its pid" || diag "$T/p.err"
is "$(ring_field $P uid)" "$(id -u)" "and its uid"
"$CTL" status --store "$STORE" >"$T/status.txt" 2>&1
grep -q "^ring .* active .* pid $P " "$T/status.txt"
ok $? "the text status lists it" || diag "$T/status.txt"

# Stop the writer, let the producer publish one message, then kill it.
W=$(worker_pid writer)
kill -STOP "$W"
touch "$T/go"
i=0
while ! grep -q '^published' "$T/p.out" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
grep -q '^published' "$T/p.out"
ok $? "the producer published a message while the writer is stopped" || diag "$T/p.err"
kill -9 $P
wait $P 2>/dev/null
wait_ring $P state orphaned
ok $? "after its producer died, the ring is orphaned" || { kill -CONT "$W"; diag "$T/shmqd.log"; }
before=$(status_json | jfield messages_in)
taken=$(ring_field $P consumed_bytes)
kill -CONT "$W"
i=0
while [ -n "$(ring_field $P state)" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
is "$(ring_field $P state)" "" "once the writer runs, the ring is drained and freed"
after=$(status_json | jfield messages_in)
is "$((after - before))" "1" "and the dead producer's message was stored"
[ "$taken" = "0" ]
ok $? "(the writer had taken nothing from the ring before: consumed_bytes $taken)"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
