#!/bin/sh
# The RocketMQ gateway (shmq-gateway, docs/gateway.md) with a real RocketMQ
# client, the npm package ali-ons (pinned by tests/gateway/package-lock.json,
# installed with `npm ci` into $BUILD/gateway-node): it is off by default;
# with gatewayEnable=true it serves routes and sends (sync, keys and tags, a
# body over 4 KiB sent zlib-compressed) that shmq's own tools then find
# (query by key, dump, consume); a push consumer in a group receives every
# message, the ones shmq's C producer sent too (an LZ4 body decompressed),
# in queue order, filtered by tag; two consumers of one group share its
# queues (the gateway tells the first of the second); its offsets are the group's offsets of
# the store; hostile frames (unknown code, broken JSON, missing fields, a 2
# GB length, a header past its frame, slow clients, 3000 requests of random
# fields, bodies and flipped bytes) are answered or closed
# without blocking other clients or the gateway; the master restarts a
# killed gateway; a send benchmark over several connections; the requests
# ali-ons does not make (batch sends, queries by key and offset, max/min
# offsets and by time, held pulls, offsets, heartbeats and client lists,
# queue locks, cluster info) from a small perl remoting client.
# Skipped when node/npm are missing or ali-ons cannot be installed.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"

. "$SRC/tests/helpers/ali_ons.sh"
ali_ons_setup
if [ -n "$NODE_SKIP" ]; then
    echo "1..0 # SKIP $NODE_SKIP"
    exit 0
fi
broker_init gateway
JS="$SRC/tests/gateway/client.js"
RC="$SRC/tests/gateway/remoting_client.pl"
TOPIC=TopicGw

# md5 of the body client.js makes for key $1 and size $2.
body_md5() {
    perl -MDigest::MD5=md5_hex -e 'my ($k, $s) = @ARGV; my $u = "$k ";
        print md5_hex(substr($u x (int($s / length($u)) + 1), 0, $s)), "\n"' "$1" "$2"
}

# ---- off by default, keys checked ----------------------------------------------------
"$SHMQD" --store "$T/cfg" --print-config >"$T/print.out" 2>&1
grep -qx "gatewayEnable=false" "$T/print.out" && grep -qx "gatewayBindAddress=127.0.0.1" "$T/print.out"
ok $? "the gateway is off by default, bound to 127.0.0.1 when on" || diag "$T/print.out"
"$SHMQD" --store "$T/bad" --set gatewayBindAddress=gateway.example >"$T/bad.log" 2>&1
is "$?" "2" "a gatewayBindAddress that is no address is refused (exit 2)"

PORT=$(free_port)
# The port taken: the store runs without the gateway, which serves once the port is free.
perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
    LocalPort => shift, ReuseAddr => 1) or die "listen: $!"; $| = 1; print "held\n"; sleep 300' \
    "$PORT" >"$T/holder.out" 2>&1 &
HOLDER=$!
bg_add "$HOLDER"
i=0
until grep -q held "$T/holder.out" || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
start_broker --set gatewayEnable=true --set listenPort="$PORT"
ok $? "shmqd runs while another process holds listenPort $PORT" || diag "$T/shmqd.log"
wait_log "cannot listen for RocketMQ clients (listenPort): .*address already in use" "$T/shmqd.log"
ok $? "the gateway logs that the port is taken" || diag "$T/shmqd.log"
is "$(store_state)" "running" "the store goes on without the gateway"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
wait_log "serving RocketMQ clients on 127.0.0.1:$PORT" "$T/shmqd.log"
ok $? "the master starts the gateway again and it serves once the port is free" ||
    diag "$T/shmqd.log"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
: >"$T/shmqd.log"

start_broker --set gatewayEnable=true --set listenPort="$PORT" \
    --set messageDelayLevel="1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s"
ok $? "shmqd starts with gatewayEnable=true, listenPort=$PORT" || diag "$T/shmqd.log"
wait_log "serving RocketMQ clients on 127.0.0.1:$PORT" "$T/shmqd.log"
ok $? "the gateway worker serves on 127.0.0.1:$PORT" || diag "$T/shmqd.log"
GW_PID=$(worker_pid gateway)
ok $? "status lists the gateway worker (pid $GW_PID)"
"$CTL" topic --store "$STORE" $SMALL create "$TOPIC" --queues 4 >"$T/topic.out" 2>&1
ok $? "topic $TOPIC created with 4 queues" || diag "$T/topic.out"

# ---- ali-ons sends; shmq's tools find the messages -------------------------------------
timeout 180 node "$JS" produce "$PORT" "$TOPIC" 20 nk >"$T/p1.out" 2>"$T/p1.err"
ok $? "ali-ons sends 20 messages with keys and tags through the gateway" || diag "$T/p1.err"
is "$(grep -c '^sent nk-' "$T/p1.out")" "20" "every send is answered SEND_OK with its queue and offset"
timeout 180 node "$JS" produce "$PORT" "$TOPIC" 2 big 8192 >"$T/p2.out" 2>"$T/p2.err"
ok $? "ali-ons sends two 8 KiB bodies (zlib-compressed by the client)" || diag "$T/p2.err"

# the indexer follows the CommitLog: wait (bounded) for the key
i=0
while :; do
    "$CTL" query --store "$STORE" $SMALL --topic "$TOPIC" --key nk-7 --json >"$T/q.out" 2>"$T/q.err"
    [ -s "$T/q.out" ] || [ $i -ge 100 ] && break
    sleep 0.1
    i=$((i + 1))
done
is "$(jfield body <"$T/q.out")" "nk-7" "shmqctl query finds a message ali-ons sent by its key" ||
    diag "$T/q.err"
is "$(jfield tags <"$T/q.out")" "Tag1" "... with the tag ali-ons gave it"
msgid=$(awk '$2 == "nk-7" { print $3 }' "$T/p1.out")
is "$(jfield msg_id <"$T/q.out")" "$msgid" "... under the message id the gateway answered"
"$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump.json" 2>"$T/dump.err"
zl=$(perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_); print "$j->{body_len}\n"
    if $j->{topic} eq "TopicGw" && $j->{compression} eq "zlib"' <"$T/dump.json" |
    sort | uniq -c | awk '{ print $1 "x" $2 }')
is "$zl" "2x8192" "the two large bodies are stored zlib-compressed as the client sent them" ||
    diag "$T/dump.err"

# ---- shmq's C producer; ali-ons's push consumer receives everything ----------------------
for i in 0 1 2 3 4 5 6 7 8 9; do
    "$CTL" send --store "$STORE" $SMALL "$TOPIC" "ck-$i" --keys "ck-$i" --tags Tag1 \
        >>"$T/csend.out" 2>>"$T/csend.err" || echo "failed $i" >>"$T/csend.out"
done
perl -e 'print substr("cbig " x 2000, 0, 9000)' >"$T/cbig.body"
"$CTL" send --store "$STORE" $SMALL "$TOPIC" --keys cbig <"$T/cbig.body" >>"$T/csend.out" \
    2>>"$T/csend.err" || echo "failed cbig" >>"$T/csend.out"
is "$(grep -c failed "$T/csend.out")" "0" "shmqctl send stores 11 messages (one LZ4-compressed)" ||
    diag "$T/csend.err"

timeout 180 node "$JS" consume "$PORT" "$TOPIC" NG 33 >"$T/c1.out" 2>"$T/c1.err"
ok $? "an ali-ons push consumer of group NG receives 33 distinct messages" || diag "$T/c1.err"
missing=""
for k in $(awk '$1 == "sent" { print $2 }' "$T/p1.out" "$T/p2.out") ck-0 ck-5 ck-9 cbig; do
    grep -q "^got $k " "$T/c1.out" || missing="$missing $k"
done
is "$missing" "" "every message of both producers arrived" || diag "$T/c1.out"
is "$(awk '$2 == "big-1" { print $4 " " $5; exit }' "$T/c1.out")" "8192 $(body_md5 big-1 8192)" \
    "a zlib-compressed body ali-ons sent arrives whole (length and md5)"
is "$(awk '$2 == "cbig" { print $4 " " $5; exit }' "$T/c1.out")" \
    "9000 $(perl -MDigest::MD5=md5_hex -e 'local $/; print md5_hex(<STDIN>)' <"$T/cbig.body")" \
    "a body shmq stored LZ4-compressed arrives decompressed to ali-ons"
awk '$1 == "got" { if (($6 in last) && $7 + 0 <= last[$6]) bad++; last[$6] = $7 + 0 }
    END { print bad + 0 }' "$T/c1.out" >"$T/order.out"
is "$(cat "$T/order.out")" "0" "each queue's messages arrive in queue-offset order"

"$CTL" group --store "$STORE" $SMALL progress NG --json >"$T/progress.out" 2>&1
is "$(jfield total_lag <"$T/progress.out")" "0" \
    "the consumer's offsets are the group's committed offsets in the store (lag 0)" ||
    diag "$T/progress.out"
"$CTL" send --store "$STORE" $SMALL "$TOPIC" "after-1" --keys after-1 >/dev/null 2>&1
timeout 180 node "$JS" consume "$PORT" "$TOPIC" NG 1 >"$T/c2.out" 2>"$T/c2.err"
is "$(awk '$1 == "got" { print $2; exit }' "$T/c2.out")" "after-1" \
    "a new consumer of NG starts at the committed offsets: only the new message comes" ||
    diag "$T/c2.out"

timeout 180 node "$JS" consume "$PORT" "$TOPIC" TG 21 Tag1 >"$T/c3.out" 2>"$T/c3.err"
ok $? "a consumer subscribed to Tag1 receives the 21 Tag1 messages" || diag "$T/c3.err"
is "$(awk '$1 == "got" && $3 != "Tag1"' "$T/c3.out" | wc -l | tr -d ' ')" "0" \
    "... and nothing of another tag" || diag "$T/c3.out"

"$CTL" consume --store "$STORE" $SMALL "$TOPIC" --group CG --count 34 --json >"$T/cc.out" \
    2>"$T/cc.err"
ok $? "shmqctl consume reads the 34 messages" || diag "$T/cc.err"
is "$(perl -MJSON::PP -ne 'my $j = JSON::PP->new->decode($_); print "$j->{body_len}\n"
    if $j->{keys} =~ /^big-/' <"$T/cc.out" | sort -u)" "8192" \
    "... the bodies ali-ons compressed, decompressed"

# ---- two consumers of one group share the queues -----------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicS --queues 4 >/dev/null 2>&1
STOP_FILE="$T/stop" timeout 300 node "$JS" consume "$PORT" TopicS SG 0 >"$T/s1.out" 2>"$T/s1.err" &
S1=$!
bg_add "$S1"
STOP_FILE="$T/stop" timeout 300 node "$JS" consume "$PORT" TopicS SG 0 >"$T/s2.out" 2>"$T/s2.err" &
S2=$!
bg_add "$S2"
i=0
# both hold 2 of the 4 queues: the second's arrival was told to the first
until [ "$(grep '^queues' "$T/s1.out" | tail -1)" = "queues 2" ] &&
    [ "$(grep '^queues' "$T/s2.out" | tail -1)" = "queues 2" ] || [ $i -ge 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
timeout 180 node "$JS" produce "$PORT" TopicS 40 sk >"$T/ps.out" 2>"$T/ps.err"
ok $? "40 messages sent while two consumers of group SG run" || diag "$T/ps.err"
is "$(grep '^queues' "$T/s1.out" | tail -1) $(grep '^queues' "$T/s2.out" | tail -1)" \
    "queues 2 queues 2" "the two members hold 2 of the topic's 4 queues each" || diag "$T/s1.out"
i=0
until [ "$(cat "$T/s1.out" "$T/s2.out" | awk '$1 == "got" { print $2 }' | sort -u | wc -l)" -ge 40 ] ||
    [ $i -ge 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
: >"$T/stop"
wait "$S1"
r1=$?
wait "$S2"
is "$r1 $?" "0 0" "both consumers ran to their stop" || diag "$T/s1.err"
is "$(cat "$T/s1.out" "$T/s2.out" | awk '$1 == "got" { print $2 }' | sort -u | wc -l | tr -d ' ')" \
    "40" "every message reached the group" || diag "$T/s2.err"
c1=$(grep -c '^got' "$T/s1.out")
c2=$(grep -c '^got' "$T/s2.out")
[ "$c1" -gt 0 ] && [ "$c2" -gt 0 ]
ok $? "each member consumed part of them ($c1 and $c2): the group's queues are shared"

# ---- a failed message goes back through the store's retry path --------------------------
"$CTL" send --store "$STORE" $SMALL TopicFail "f-0" --keys f-0 >/dev/null 2>&1
FAIL_FIRST=1 timeout 180 node "$JS" consume "$PORT" TopicFail FG 1 >"$T/c4.out" 2>"$T/c4.err"
ok $? "a consumer that fails f-0 once receives it again" || diag "$T/c4.err"
is "$(awk '$1 == "got" { printf "%s/%s ", $2, $9 }' "$T/c4.out")" "f-0/0 f-0/1 " \
    "... first as sent, then as its retry (reconsumeTimes 1)" || diag "$T/c4.out"
grep -q "send back of" "$T/shmqd.log"
is "$?" "1" "the gateway stored the send-back (CONSUMER_SEND_MSG_BACK)" || diag "$T/shmqd.log"
"$CTL" dump --store "$STORE" $SMALL consumequeue %RETRY%FG 0 --json >"$T/retry.out" 2>&1
is "$(wc -l <"$T/retry.out" | tr -d ' ')" "1" "the retry topic %RETRY%FG holds the message" ||
    diag "$T/retry.out"

# ---- a batch and a send-back held by the store block no other client ----------------------
"$CTL" topic --store "$STORE" $SMALL create TopicH --queues 1 >/dev/null 2>&1
# the gateway's counters in `shmqctl status --json`: "NAME VALUE" lines
gw_counts() {
    status_json | perl -MJSON::PP -ne 'my $g = JSON::PP->new->decode($_)->{gateway} // {};
        print "$_ $g->{$_}\n" for sort keys %$g'
}
gwc() {
    awk -v k="$1" '$1 == k { print $2 }' "$2"
}
i=0
until [ "$(gw_counts | gwc connections /dev/stdin)" = "0" ] || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
gw_counts >"$T/gw-before"
WRITER_PID=$(worker_pid writer)
timeout 120 perl "$RC" held "$PORT" TopicH HG "$WRITER_PID" >"$T/held.out" 2>"$T/held.err"
ok $? "the held client ran (writer $WRITER_PID stopped, then continued)" || diag "$T/held.err"
kill -CONT "$WRITER_PID" 2>/dev/null
i=0
until [ "$(gw_counts | gwc connections /dev/stdin)" = "0" ] || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
gw_counts >"$T/gw-after"
# the counters moved by what the held client did: 3 connections; a send, a batch of 2, a
# pull, a route and a send-back
delta() {
    echo $(($(gwc "$1" "$T/gw-after") - $(gwc "$1" "$T/gw-before")))
}
is "$(delta accepted) $(gwc connections "$T/gw-after")" "3 0" \
    "status --json: the gateway counted 3 connections accepted, none open after they closed" ||
    diag "$T/gw-after"
is "$(delta requests_send) $(delta requests_pull) $(delta requests_other)" "2 1 2" \
    "... requests: 2 sends, 1 pull, 2 others (route, send-back)"
is "$(delta messages_sent) $(delta send_errors)" "3 0" "... 3 messages sent, no error"
[ "$(delta bytes_in)" -gt 100 ] && [ "$(delta bytes_out)" -gt 100 ]
ok $? "... bytes in and out ($(delta bytes_in), $(delta bytes_out))"
is "$(gwc held_pulls "$T/gw-after")" "0" "... no pull held"
"$CTL" status --store "$STORE" $SMALL >"$T/gw-status.txt" 2>&1
grep -q "^gateway: *0 clients (accepted $(gwc accepted "$T/gw-after")," "$T/gw-status.txt"
ok $? "shmqctl status shows the gateway's line" || diag "$T/gw-status.txt"
hl() {
    awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$T/held.out"
}
is "$(hl held-early)" "none none" \
    "with the writer stopped, a batch and a send-back are not answered yet" || diag "$T/held.out"
is "$(hl route)" "0" "... while another client's route query is answered"
is "$(hl pull)" "0" "... and its pull"
is "$(hl order)" "route pull batch sendback" \
    "the batch and the send-back are answered after those, once the writer runs again"
is "$(hl batch)" "0 2" "the batch is then stored, one id per message"
is "$(hl sendback)" "0" "the send-back is then stored"
is "$(worker_pid writer)" "$WRITER_PID" "the writer was not restarted meanwhile"

# ---- the other requests of RocketMQ's client libraries --------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicR --queues 2 >/dev/null 2>&1
"$CTL" send --store "$STORE" $SMALL TopicR "a" --queue 1 --tags TagA >/dev/null 2>&1
timeout 180 perl "$RC" requests "$PORT" TopicR >"$T/r.out" 2>"$T/r.err"
ok $? "the request client ran" || diag "$T/r.err"
r() {
    awk -v k="$1" '$1 == k { out = $2; for (i = 4; i <= NF; i++) out = out " " $i; print out
        exit }' "$T/r.out"
}
is "$(r batch)" "0 3 1" "SEND_BATCH_MESSAGE stores 3 messages in the queue asked, one id each"
is "$(r query)" "0 1 batch-1/bk-1" "QUERY_MESSAGE finds a batch message by its key"
is "$(r view)" "0 TopicR/batch-2" "VIEW_MESSAGE_BY_ID gives the record at a CommitLog offset"
is "$(r max-offset)" "0 4" "GET_MAX_OFFSET"
is "$(r min-offset)" "0 0" "GET_MIN_OFFSET"
is "$(r offset-by-time)" "0 0" "SEARCH_OFFSET_BY_TIMESTAMP"
is "$(r pull-tagb)" "0 3 next=4 max=4" "a pull with subscription TagB skips the TagA message"
is "$(r pull-past-max)" "21 4" "a pull past the max offset is PULL_OFFSET_MOVED to the max"
held=$(r pull-held)
is "${held%% *}" "19" "a pull at the max offset is held, then PULL_NOT_FOUND"
[ "${held##* }" -ge 1400 ]
ok $? "... not before its suspendTimeoutMillis (1500 ms; held ${held##* } ms)"
is "$(r update-offset)" "0" "UPDATE_CONSUMER_OFFSET"
is "$(r query-offset)" "0 2" "QUERY_CONSUMER_OFFSET gives the offset committed"
is "$(r heartbeat)" "0" "HEART_BEAT"
is "$(r consumer-list)" "0 127.0.0.1@rc" "GET_CONSUMER_LIST_BY_GROUP lists the client id of the heartbeat"
is "$(r lock)" "0 1" "LOCK_BATCH_MQ locks a queue for a client"
is "$(r lock-held-by-other)" "0 0" "... which another client id cannot lock then"
is "$(r unlock)" "0" "UNLOCK_BATCH_MQ"
is "$(r lock-after-unlock)" "0 1" "... after which the other client locks it"
is "$(r unregister)" "0" "UNREGISTER_CLIENT"
is "$(r consumer-list-after)" "1" "... after which the group has no consumer"
is "$(r send-v1)" "0 0 id" "SEND_MESSAGE (the long header names) stores in the queue asked"
is "$(r cluster)" "0 broker-a" "GET_BROKER_CLUSTER_INFO names this broker"
is "$(r route-new-topic)" "0 4" "a route for a topic not created yet gives defaultTopicQueueNums"

# ---- the store's topic perms apply ---------------------------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicRO --queues 1 --perm 4 >/dev/null 2>&1
"$CTL" topic --store "$STORE" $SMALL create TopicWO --queues 1 --perm 2 >/dev/null 2>&1
timeout 60 perl "$RC" perms "$PORT" TopicRO TopicWO >"$T/perm.out" 2>"$T/perm.err"
ok $? "the perms client ran" || diag "$T/perm.err"
is "$(awk '$1 == "send-readonly" { print $2 }' "$T/perm.out")" "16" \
    "a send to a topic without PERM_WRITE is answered NO_PERMISSION (16)" || diag "$T/perm.out"
is "$(awk '$1 == "pull-writeonly" { print $2 }' "$T/perm.out")" "16" \
    "a pull of a topic without PERM_READ is answered NO_PERMISSION (16)"
is "$(awk '$1 == "route-readonly" { print $2 " " $4 }' "$T/perm.out")" "0 4" \
    "a route gives the topic's perm"

# ---- hostile frames -------------------------------------------------------------------
timeout 180 perl "$RC" hostile "$PORT" "$TOPIC" >"$T/h.out" 2>"$T/h.err"
ok $? "the hostile client ran" || diag "$T/h.err"
h() {
    awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$T/h.out"
}
is "$(h unknown-code)" "3 7" "an unknown request code is answered REQUEST_CODE_NOT_SUPPORTED (3)"
is "$(h route)" "0 8 127.0.0.1:$PORT 4" "a route names this broker and the topic's 4 queues"
is "$(h broken-json)" "1 0" "a header that is no JSON is answered SYSTEM_ERROR"
is "$(h no-code)" "1 0" "a header without a code is answered SYSTEM_ERROR"
is "$(h no-topic)" "1 11" "a route request without its topic is answered SYSTEM_ERROR"
is "$(h bad-queue-id)" "1 12" "a pull with a queue id that is no number is answered SYSTEM_ERROR"
is "$(h still-usable)" "0 13" "the connection is still served after those"
is "$(h beside-slow)" "0 14" "a client is served while two others stop inside a frame"
is "$(h first-beside-slow)" "0 15" "... and so is the first one"
is "$(h 2gb-length)" "closed" "a 2 GB frame length closes that connection"
is "$(h header-past-frame)" "closed" "a header longer than its frame closes that connection"
is "$(h after-bad-frames)" "0 16" "other connections are served after those"
is "$(h after-oneway)" "0 18" "a one-way request is not answered, the next one is"
timeout 300 perl "$RC" garbage "$PORT" "$TOPIC" 3000 7 >"$T/g.out" 2>"$T/g.err"
ok $? "3000 requests with random fields, bodies and flipped bytes were sent" || diag "$T/g.err"
is "$(awk '{ print $5 }' "$T/g.out")" "alive=0" "... after which the gateway still answers a route" ||
    diag "$T/g.out"
grep -q "frame of 2147483647 bytes" "$T/shmqd.log"
ok $? "the closed connection is logged with its reason" || diag "$T/shmqd.log"
is "$(worker_pid gateway)" "$GW_PID" "the gateway did not crash or restart"

# ---- the gateway's counters as metrics -------------------------------------------------------
"$CTL" metrics --store "$STORE" $SMALL >"$T/gw.prom" 2>"$T/gw-prom.err"
ok $? "shmqctl metrics" || diag "$T/gw-prom.err"
gw_counts >"$T/gw-now"
gmv() {
    awk -v k="$1" '$1 == k { print $2 }' "$T/gw.prom"
}
is "$(gmv 'shmq_gateway_requests_total{kind="send"}') $(gmv 'shmq_gateway_requests_total{kind="pull"}') $(gmv 'shmq_gateway_requests_total{kind="other"}')" \
    "$(gwc requests_send "$T/gw-now") $(gwc requests_pull "$T/gw-now") $(gwc requests_other "$T/gw-now")" \
    "shmq_gateway_requests_total{kind} is what status shows" || diag "$T/gw.prom"
[ "$(gmv 'shmq_gateway_refused_total{cause="bad_input"}')" -ge 2 ]
ok $? "shmq_gateway_refused_total{cause=\"bad_input\"} counts the closed hostile connections ($(gmv 'shmq_gateway_refused_total{cause="bad_input"}'))"
[ "$(gmv 'shmq_gateway_unsupported_total')" -ge 1 ] &&
    [ "$(gmv 'shmq_gateway_accepted_total')" -ge 10 ] &&
    [ -n "$(gmv shmq_gateway_connections)" ] && [ -n "$(gmv shmq_gateway_held_pulls)" ] &&
    [ "$(gmv 'shmq_gateway_bytes_total{direction="in"}')" -gt 0 ]
ok $? "... unsupported requests, connections accepted and open, held pulls, bytes" ||
    diag "$T/gw.prom"
PROMTOOL=$(command -v promtool)
if [ -n "$PROMTOOL" ]; then
    "$PROMTOOL" check metrics <"$T/gw.prom" >"$T/gw-promtool.out" 2>&1
    ok $? "promtool check metrics accepts the gateway's metrics" || diag "$T/gw-promtool.out"
else
    ok 0 "# SKIP promtool not installed"
fi

# ---- supervision -----------------------------------------------------------------------
kill -KILL "$GW_PID"
wait_restarted gateway "$GW_PID" 300
ok $? "the master restarts a killed gateway" || diag "$T/shmqd.log"
i=0
until [ "$(grep -c "serving RocketMQ clients on 127.0.0.1:$PORT" "$T/shmqd.log")" -ge 2 ] ||
    [ $i -ge 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
timeout 180 node "$JS" produce "$PORT" "$TOPIC" 1 restarted >"$T/p3.out" 2>"$T/p3.err"
ok $? "ali-ons sends through the restarted gateway" || diag "$T/p3.err"

# ---- a send benchmark (reported, not asserted against a time) ---------------------------------
timeout 300 perl "$RC" bench "$PORT" "$TOPIC" 4 500 1024 >"$T/bench.out" 2>"$T/bench.err"
ok $? "4 connections send 500 messages of 1 KiB each" || diag "$T/bench.err"
awk '{ if ($3 > 0) printf "# gateway sends: %d of 1 KiB in %.2f s (%.0f/s) over 4 connections\n", $2, $3, $2 / $3 }' \
    "$T/bench.out"

stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
done_testing
