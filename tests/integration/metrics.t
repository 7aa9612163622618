#!/bin/sh
# Metrics: `shmqctl metrics` and the metrics worker (metricsListen) give the
# Prometheus text format of a store under load; promtool accepts it; the
# figures match what was sent and consumed (messages per queue and per
# topic, the send latency, flush and stage (append to flush, append to
# dispatch, store to pull) histograms' counts, consumer lag,
# workers up); a topic created again in its slot starts its counts at 0;
# the endpoint answers only GET/HEAD of /metrics; with
# metricsListen unset no metrics worker runs; a bad metricsListen is refused.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init metrics

PROMTOOL=$(command -v promtool)
CURL=$(command -v curl)

# value NAME{LABELS} FILE: the sample's value (empty if none).
value() {
    awk -v k="$1" '$1 == k { print $2 }' "$2"
}

"$SHMQD" --store "$T/bad" --set metricsListen=70000 >"$T/bad.log" 2>&1
is "$?" "2" "metricsListen=70000 is refused (exit 2)"

start_broker
ok $? "shmqd starts without metricsListen" || diag "$T/shmqd.log"
status_json | grep -q '"name":"metrics"'
is "$?" "1" "no metrics worker runs by default"
stop_broker

# A free port on 127.0.0.1.
PORT=$(free_port)
start_broker --set metricsListen=$PORT
ok $? "shmqd starts with metricsListen=$PORT" || diag "$T/shmqd.log"
i=0
until grep -q "serving the metrics at http://127.0.0.1:$PORT/metrics" "$T/shmqd.log" ||
    [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q "serving the metrics at http://127.0.0.1:$PORT/metrics" "$T/shmqd.log"
ok $? "the metrics worker serves on 127.0.0.1:$PORT" || diag "$T/shmqd.log"

"$CTL" topic --store "$STORE" $SMALL create TopicM --queues 2 >"$T/topic.out" 2>&1
"$HELPERS/load_producer" --store "$STORE" --topic TopicM --id 1 --count 3000 --rate 2000 \
    --size 200 >"$T/p1" 2>"$T/p1.err" &
bg_add $!
P1=$!
sleep 0.5
"$CTL" metrics --store "$STORE" $SMALL >"$T/under-load.prom" 2>"$T/m.err"
ok $? "shmqctl metrics under load" || diag "$T/m.err"
if [ -n "$PROMTOOL" ]; then
    "$PROMTOOL" check metrics <"$T/under-load.prom" >"$T/promtool.out" 2>&1
    ok $? "promtool check metrics accepts it" || diag "$T/promtool.out"
else
    ok 0 "# SKIP promtool not installed"
fi
wait "$P1"
ok $? "the producer sent 3000 messages" || diag "$T/p1.err"
"$CTL" consume --store "$STORE" $SMALL TopicM --group GM --count 1000 --timeout 10000 \
    >"$T/c1" 2>&1
ok $? "a consumer takes 1000 of them" || diag "$T/c1"
sleep 1.5 # the consumer's commits reach the master
wait_pos flushed # and every record is flushed (ASYNC_FLUSH: within flushIntervalCommitLog)

if [ -n "$CURL" ]; then
    "$CURL" -s -S -o "$T/http.prom" -D "$T/http.hdr" "http://127.0.0.1:$PORT/metrics" 2>"$T/curl.err"
    ok $? "GET /metrics" || diag "$T/curl.err"
    grep -qi '^content-type: text/plain; version=0.0.4' "$T/http.hdr"
    ok $? "served as the Prometheus text format" || diag "$T/http.hdr"
    is "$("$CURL" -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/metrics")" \
        "405" "POST is refused (405)"
    is "$("$CURL" -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other")" "404" \
        "another path is not found (404)"
else
    perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new("127.0.0.1:$ARGV[0]") or exit 1;
        print $s "GET /metrics HTTP/1.0\r\n\r\n"; local $/; my $r = <$s>;
        $r =~ s/^.*?\r\n\r\n//s; print $r' "$PORT" >"$T/http.prom"
    ok $? "GET /metrics"
    ok 0 "# SKIP curl not installed"
    ok 0 "# SKIP curl not installed"
    ok 0 "# SKIP curl not installed"
fi
if [ -n "$PROMTOOL" ]; then
    "$PROMTOOL" check metrics <"$T/http.prom" >"$T/promtool2.out" 2>&1
    ok $? "promtool accepts what the endpoint serves" || diag "$T/promtool2.out"
else
    ok 0 "# SKIP promtool not installed"
fi
q0=$(value 'shmq_queue_messages_total{topic="TopicM",queue="0"}' "$T/http.prom")
q1=$(value 'shmq_queue_messages_total{topic="TopicM",queue="1"}' "$T/http.prom")
is "$((q0 + q1))" "3000" "messages per queue add up to the 3000 sent ($q0 + $q1)"
is "$(value shmq_messages_in_total "$T/http.prom")" "3000" "shmq_messages_in_total is 3000"
l0=$(value 'shmq_consumer_lag_messages{group="GM",topic="TopicM",queue="0"}' "$T/http.prom")
l1=$(value 'shmq_consumer_lag_messages{group="GM",topic="TopicM",queue="1"}' "$T/http.prom")
is "$((l0 + l1))" "2000" "the group's lag is the 2000 not consumed ($l0 + $l1)"
is "$(value 'shmq_worker_up{worker="metrics"}' "$T/http.prom")" "1" "the metrics worker is up"

# per topic, written by the writer
is "$(value 'shmq_topic_messages_in_total{topic="TopicM"}' "$T/http.prom")" "3000" \
    "shmq_topic_messages_in_total of TopicM is the 3000 sent"
tb=$(value 'shmq_topic_bytes_in_total{topic="TopicM"}' "$T/http.prom")
is "$tb" "$(value shmq_bytes_in_total "$T/http.prom")" "its bytes are every byte stored ($tb)"

# hist_ok NAME FILE: cumulative buckets never fall, +Inf equals _count; prints _count
hist_ok() {
    awk -v h="$1" '
        index($1, h "_bucket{") == 1 { if ($2 + 0 < last) bad = 1; last = $2 + 0; inf = $2 }
        $1 == h "_count" { count = $2 }
        END { if (bad || inf == "" || inf != count) { print "bad"; exit 1 } print count }' "$2"
}
sc=$(hist_ok shmq_send_latency_seconds "$T/http.prom")
ok $? "shmq_send_latency_seconds: buckets cumulative, +Inf = _count" || diag "$T/http.prom"
is "$sc" "3000" "the send latency histogram counts the 3000 messages sent"
le1=$(value 'shmq_send_latency_seconds_bucket{le="1"}' "$T/http.prom")
[ -n "$le1" ] && [ "$le1" -gt 0 ]
ok $? "sends at 2000/s mostly take under 1 s ($le1 of 3000)" || diag "$T/http.prom"
fc=$(hist_ok shmq_flush_duration_seconds "$T/http.prom")
ok $? "shmq_flush_duration_seconds: buckets cumulative, +Inf = _count" || diag "$T/http.prom"
[ -n "$fc" ] && [ "$fc" -gt 0 ]
ok $? "the flush histogram counts the flusher's flushes ($fc)"
grep -q '^# TYPE shmq_flush_duration_seconds histogram$' "$T/http.prom"
ok $? "flush duration is a histogram"
# The stages after the append, without a tracer (the writer's stamps; the consumers' pulls).
# The writer stamps a sample of its batches (one per millisecond at most), each counted
# once per message it holds.
for h in shmq_append_to_flush_seconds shmq_append_to_dispatch_seconds; do
    hc=$(hist_ok $h "$T/http.prom")
    ok $? "$h: buckets cumulative, +Inf = _count" || diag "$T/http.prom"
    [ -n "$hc" ] && [ "$hc" -gt 0 ] && [ "$hc" -le 3000 ]
    ok $? "$h samples the 3000 stored ($hc)"
done
pc=$(hist_ok shmq_store_to_pull_seconds "$T/http.prom")
ok $? "shmq_store_to_pull_seconds: buckets cumulative, +Inf = _count" || diag "$T/http.prom"
[ -n "$pc" ] && [ "$pc" -ge 1000 ] && [ "$pc" -le 3000 ]
ok $? "it counts the pulled messages ($pc: the 1000 consumed, and at most the 3000 stored)"

# A topic deleted and created again (its slot taken anew) starts at 0; a message counts.
"$CTL" topic --store "$STORE" $SMALL delete TopicM >"$T/del.out" 2>&1
ok $? "TopicM deleted" || diag "$T/del.out"
"$CTL" topic --store "$STORE" $SMALL create TopicM --queues 2 >"$T/topic2.out" 2>&1
ok $? "and created again" || diag "$T/topic2.out"
"$CTL" metrics --store "$STORE" $SMALL >"$T/again.prom" 2>"$T/m2.err"
is "$(value 'shmq_topic_messages_in_total{topic="TopicM"}' "$T/again.prom")" "0" \
    "the new TopicM's count starts at 0"
"$HELPERS/load_producer" --store "$STORE" --topic TopicM --id 2 --count 7 >"$T/p2" 2>"$T/p2.err"
ok $? "7 more messages sent" || diag "$T/p2.err"
"$CTL" metrics --store "$STORE" $SMALL >"$T/again2.prom" 2>"$T/m3.err"
is "$(value 'shmq_topic_messages_in_total{topic="TopicM"}' "$T/again2.prom")" "7" \
    "the new TopicM counts its own 7"
is "$(hist_ok shmq_send_latency_seconds "$T/again2.prom")" "3007" "and the send latency 3007"
is "$(value 'shmq_store_state{state="running"}' "$T/http.prom")" "1" "the store is running"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

done_testing
