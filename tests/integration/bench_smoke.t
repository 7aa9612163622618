#!/bin/sh
# shmq-bench smoke test: every mode runs on tiny counts, prints one JSON
# object with the promised fields, and its counts add up (every message
# sent is acknowledged, received or read).  Never asserts on speed.
. "${SHMQ_SRC:-$(dirname "$0")/../..}/tests/helpers/broker.sh"
broker_init bench-smoke

BENCH="$BUILD/shmq-bench"
if [ ! -x "$BENCH" ]; then
    echo "Bail out! $BENCH not built"
    exit 1
fi
# Small files, as the other broker tests use (a 1 GiB segment would be
# allocated and written with zeros at each start).
BSET="--set mappedFileSizeCommitLog=4194304 --set mappedFileSizeConsumeQueue=60000 --set maxMessageSize=65536"

# jget FILE PATH: a value from the JSON object in FILE ("a.b.c"; booleans 1/0, absent "null").
jget() {
    perl -MJSON::PP -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1;
        my $v = eval { JSON::PP->new->decode(<$f>) }; exit 1 unless $v;
        for my $k (split /\./, $ARGV[1]) { $v = ref($v) eq "HASH" ? $v->{$k} : undef }
        $v = $v ? 1 : 0 if JSON::PP::is_bool($v);
        print defined $v ? (ref($v) eq "ARRAY" ? scalar(@$v) : $v) : "null", "\n"' "$1" "$2"
}

# The fields every mode promises (issue: msgs_per_sec, mb_per_sec, latency_us
# {p50, p99, p999, max}, errors, the configuration).
fields_ok() {
    local f missing=""
    for f in msgs_per_sec mb_per_sec errors latency_us.p50 latency_us.p99 latency_us.p999 \
        latency_us.max config machine.nproc; do
        [ "$(jget "$1" "$f")" = "null" ] && missing="$missing $f"
    done
    [ -z "$missing" ] || echo "# missing:$missing"
    [ -z "$missing" ]
}

run() { # run NAME ARGS...: shmq-bench ARGS --json into $T/NAME.json
    local name=$1
    shift
    "$BENCH" "$@" --json --tmpdir "$T" >"$T/$name.json" 2>"$T/$name.err"
    local rc=$?
    [ $rc -eq 0 ] || diag "$T/$name.err"
    return $rc
}

# ---- produce: synchronous, asynchronous, batches (the bench starts its own broker) ----
run p1 produce --count 2000 --size 64 --no-baseline $BSET
ok $? "produce: one producer, synchronous sends"
fields_ok "$T/p1.json"
ok $? "produce: the JSON object has every promised field"
is "$(jget "$T/p1.json" msgs)" 2000 "produce: every message acknowledged"
is "$(jget "$T/p1.json" errors)" 0 "produce: no errors"
is "$(jget "$T/p1.json" latency_us.count)" 2000 "produce: one latency sample per send"
is "$(jget "$T/p1.json" config.flush)" ASYNC_FLUSH "produce: the flush mode is reported"

run p2 produce --count 1000 --producers 2 --inflight 8 --size 100 --no-baseline $BSET
ok $? "produce: two producer processes with 8 sends in flight"
is "$(jget "$T/p2.json" msgs)" 1000 "produce: the processes' counts add up to --count"
is "$(jget "$T/p2.json" config.producers)" 2 "produce: the configuration names the producers"

run p3 produce --count 1000 --batch 10 --flush sync --size 32 $BSET
ok $? "produce: batches under SYNC_FLUSH, with the machine baseline"
is "$(jget "$T/p3.json" msgs)" 1000 "produce: batched messages all acknowledged"
is "$(jget "$T/p3.json" config.flush)" SYNC_FLUSH "produce: --flush sync starts a SYNC_FLUSH broker"
fields_ok "$T/p3.json"
ok $? "produce: the baseline run has every field"
[ "$(jget "$T/p3.json" machine.memcpy_gb_per_sec)" != null ] &&
    [ "$(jget "$T/p3.json" machine.fdatasync_4k_p50_us)" != null ]
ok $? "produce: memcpy bandwidth and fdatasync latency measured in the same run"

# ---- consume: a backlog read in place ----
run c1 consume --count 3000 --size 50 --no-baseline $BSET
ok $? "consume: read a backlog"
is "$(jget "$T/c1.json" msgs)" 3000 "consume: every message of the backlog read"
is "$(jget "$T/c1.json" extra.backlog_written)" 3000 "consume: the backlog was written first"
fields_ok "$T/c1.json"
ok $? "consume: every promised field"

# ---- group: members of a consumer group drain a backlog; members killed ----
run g1 group --members 2 --count 20000 --kills 2 --size 64 --no-baseline $BSET
ok $? "group: two members of a group drain a backlog, then two are killed"
is "$(jget "$T/g1.json" msgs)" 20000 "group: the members' counts add up to the backlog"
is "$(jget "$T/g1.json" extra.exactly_once)" 1 "group: every message received exactly once"
is "$(jget "$T/g1.json" extra.duplicates)/$(jget "$T/g1.json" extra.missing)" 0/0 \
    "group: no duplicate, none missing"
is "$(jget "$T/g1.json" extra.per_member)" 2 "group: a count per member"
is "$(jget "$T/g1.json" extra.rebalance_ms)" 2 "group: a rebalance time per kill"
is "$(jget "$T/g1.json" extra.rebalance_exit_ms)" 2 "group: and the part until the member was gone"
is "$(jget "$T/g1.json" extra.rebalance_timeouts)" 0 "group: the others took every queue each time"
fields_ok "$T/g1.json"
ok $? "group: every promised field"

# ---- e2e: fixed rate, send-to-receive latency ----
run e1 e2e --rate 2000 --count 400 --size 32 --no-baseline $BSET
ok $? "e2e: fixed-rate sends with a consumer"
is "$(jget "$T/e1.json" msgs)" 400 "e2e: every message sent was received"
is "$(jget "$T/e1.json" extra.lost)" 0 "e2e: nothing acknowledged went missing"
is "$(jget "$T/e1.json" latency_us.count)" 400 "e2e: one latency sample per message received"
# A rate no producer offers: said in the report, and exit 3 with --strict.
run e3 e2e --rate 100000000 --count 400 --size 32 --no-baseline --strict $BSET
is $? 3 "e2e --strict: exit 3 when the requested rate was not offered"
is "$(jget "$T/e3.json" extra.rate_reached)" 0 "e2e: the report says the rate was not reached"
[ "$(jget "$T/e3.json" extra.offered_rate)" != null ] && grep -q 'rate NOT reached' "$T/e3.err"
ok $? "e2e: the offered rate is reported, and a warning printed"

# ---- --slave: a master and its slave (SYNC_MASTER: every send waits for it) ----
run rs produce --slave --set brokerRole=SYNC_MASTER --count 2000 --producers 2 --inflight 8 \
    --size 100 --no-baseline $BSET
ok $? "produce --slave: a SYNC_MASTER and its slave"
is "$(jget "$T/rs.json" msgs)" 2000 "produce --slave: every send acknowledged by master and slave"
is "$(jget "$T/rs.json" errors)" 0 "produce --slave: no errors (no SLAVE_NOT_AVAILABLE)"
is "$(jget "$T/rs.json" config.slave)" 1 "produce --slave: the configuration says so"
is "$(jget "$T/rs.json" extra.replication.caught_up_at_end)" 1 "produce --slave: the slave caught up"
[ "$(jget "$T/rs.json" extra.replication.samples)" -gt 0 ] 2>/dev/null &&
    [ "$(jget "$T/rs.json" extra.replication.lag_ms_max)" != null ] &&
    [ "$(jget "$T/rs.json" extra.replication.lag_bytes_p99)" != null ]
ok $? "produce --slave: the slave's lag is reported in bytes and milliseconds"
run re e2e --slave --rate 2000 --count 400 --size 32 --no-baseline $BSET
ok $? "e2e --slave: an ASYNC_MASTER and its slave"
is "$(jget "$T/re.json" extra.lost)" 0 "e2e --slave: nothing acknowledged went missing"
is "$(jget "$T/re.json" extra.replication.caught_up_at_end)" 1 "e2e --slave: the slave caught up"
"$BENCH" consume --slave --count 10 --no-baseline >"$T/rx.out" 2>&1
is $? 2 "--slave with a mode other than produce and e2e is refused"

# ---- a running broker (--store) ----
if start_broker; then
    run s1 produce --store "$STORE" --count 500 --size 80 --no-baseline
    ok $? "produce --store: uses the running broker"
    is "$(jget "$T/s1.json" msgs)" 500 "produce --store: every message acknowledged"
    run s2 consume --store "$STORE" --no-baseline
    ok $? "consume --store: reads the running broker's topic"
    is "$(jget "$T/s2.json" msgs)" 500 "consume --store: reads what was produced"
    "$BENCH" produce --store "$STORE" --flush sync --count 10 --no-baseline >"$T/s3.out" 2>&1
    [ $? -ne 0 ]
    ok $? "produce --store: a --flush other than the broker's is refused"
    # failover against a store that takes producers at once: the first send is acknowledged,
    # and the time counts from --since-ms (half a second before the run).
    since=$(($(now_ms) - 500))
    run f1 failover --store "$STORE" --since-ms "$since" --timeout 20000
    ok $? "failover --store: a send acknowledged"
    is "$(jget "$T/f1.json" msgs)" 1 "failover: one message"
    is "$(jget "$T/f1.json" extra.open_refusals)" 0 "failover: a master is not refused"
    perl -e 'exit($ARGV[0] >= 500 && $ARGV[1] >= $ARGV[0] ? 0 : 1)' \
        "$(jget "$T/f1.json" extra.first_attach_ms)" "$(jget "$T/f1.json" extra.first_ack_ms)"
    ok $? "failover: times count from --since-ms (attach, then the acknowledgement)"
    fields_ok "$T/f1.json"
    ok $? "failover: every promised field"
    stop_broker
    ok $? "the running broker still stops cleanly"
else
    ok 1 "broker started"
    diag "$T/shmqd.log"
fi

# ---- recover: generated store, torn tail, timed restarts ----
run r1 recover --store-bytes 6M --tail-bytes 2M --queues 4 --size 200 --restarts 1 --no-baseline \
    --set mappedFileSizeCommitLog=4194304 --set mappedFileSizeConsumeQueue=60000 \
    --set maxMessageSize=65536
ok $? "recover: generate, tear, recover, restart"
is "$(jget "$T/r1.json" extra.abnormal)" 1 "recover: the torn store was recovered as abnormal"
[ "$(jget "$T/r1.json" extra.truncated_bytes)" -gt 0 ] 2>/dev/null
ok $? "recover: the torn tail was cut"
is "$(jget "$T/r1.json" latency_us.count)" 1 "recover: one timed restart per --restarts"
is "$(jget "$T/r1.json" errors)" 0 "recover: no errors"

# ---- writer-kill: kill -9 of the writer under load ----
run k1 writer-kill --kills 2 --kill-every 1100 --size 64 --no-baseline $BSET
ok $? "writer-kill: the writer killed twice under load"
is "$(jget "$T/k1.json" extra.kills_done)" 2 "writer-kill: one gap measured per kill"
is "$(jget "$T/k1.json" extra.kills_without_ack_in_10s)" 0 "writer-kill: sends resumed after each kill"
is "$(jget "$T/k1.json" errors)" 0 "writer-kill: no send failed"

# ---- idle ----
run i1 idle --seconds 1 $BSET
ok $? "idle: measured"
[ "$(jget "$T/i1.json" extra.processes)" -ge 4 ] 2>/dev/null
ok $? "idle: the master and the workers are measured"

# ---- the plot (gnuplot is optional) ----
if command -v gnuplot >/dev/null 2>&1; then
    "$BENCH" produce --count 500 --no-baseline $BSET --tmpdir "$T" --plot "$T/lat.png" \
        >"$T/plot.out" 2>&1
    [ "$(head -c 4 "$T/lat.png" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ]
    ok $? "--plot draws a PNG"
else
    "$BENCH" produce --count 100 --no-baseline $BSET --tmpdir "$T" --plot "$T/lat.png" \
        >"$T/plot.out" 2>&1
    grep -q "apt-get install gnuplot" "$T/plot.out"
    ok $? "--plot without gnuplot says how to install it"
fi

# ---- failover: a store that never takes producers; no --store ----
"$BENCH" failover --store "$T/no-store" --timeout 300 --json >"$T/f2.out" 2>"$T/f2.err"
is $? 1 "failover: nothing acknowledged within --timeout: exit 1"
grep -q "no send to .* was acknowledged in 300 ms ([1-9][0-9]* attaches refused" "$T/f2.err"
ok $? "failover: the message counts the refused attaches" || diag "$T/f2.err"
"$BENCH" failover --timeout 300 >/dev/null 2>&1
is $? 2 "failover without --store: exit 2"

# ---- usage ----
"$BENCH" produce --inflight 0 >/dev/null 2>&1
is $? 2 "a bad option exits 2"
ls "$T" | grep -q '^shmq-bench-\(store\|slave\)' && ok 1 "temporary stores removed" ||
    ok 0 "temporary stores removed"

done_testing
