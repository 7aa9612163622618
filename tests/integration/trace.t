#!/bin/sh
# Tracing a running store with its USDT probes and shmq-trace (docs/tracing.md):
#   - the daemons and the client library carry the shmq probes, with every
#     argument in a register or a constant (what libbpf can read), each
#     with its semaphore (so its arguments are computed only while traced:
#     every count below is made through it);
#   - shmq-trace attached to a running store under load counts exactly the
#     messages sent, appended, dispatched and pulled, loses no event, and
#     breaks each message's latency into stages (enqueue -> append ->
#     flush / dispatch -> pull); the whole is never shorter than its first stage;
#   - the top topic is the one loaded, at its count;
#   - another store running the same files at the same time is left out
#     (its events are counted apart, as other processes');
#   - a worker killed and restarted shows as worker_exit (its signal) and
#     worker_start; a store started under the tracer shows its recovery steps;
#   - bad options are refused (exit 2), a store that is not running is named (exit 1).
# Skips, saying why, where shmq-trace is not built or BPF cannot be loaded.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
TRACE="$BUILD/shmq-trace"
if [ ! -x "$TRACE" ]; then
    echo "1..0 # SKIP shmq-trace is not built (it needs libbpf-dev, bpftool and clang's BPF target)"
    exit 0
fi
if ! "$TRACE" --check >/tmp/shmq-trace-check.$$ 2>&1; then
    echo "1..0 # SKIP BPF is not available here: $(tr '\n' ' ' </tmp/shmq-trace-check.$$)"
    rm -f /tmp/shmq-trace-check.$$
    exit 0
fi
rm -f /tmp/shmq-trace-check.$$
broker_init trace
COUNT=3000
# The store runs private copies of the programs: a probe is attached to a file, and
# other tests running the build's files at the same time must not pay for the trace.
mkdir -p "$T/bin"
cp "$SHMQD" "$BUILD"/shmq-* "$CTL" "$T/bin/" || exit 1
SHMQD="$T/bin/shmqd"
CTL="$T/bin/shmqctl"

# probe_args BINARY PROBE: the probe's argument list in BINARY's ELF notes ("" when absent).
probe_args() {
    readelf -n "$1" 2>/dev/null | awk -v p="$2" '
        /Provider: shmq/ { prov = 1; next }
        prov && /Name:/ { name = $2; prov = 0; next }
        name == p && /Arguments:/ { sub(/^ *Arguments: */, ""); print; exit }'
}

# tracer_start OUT ARGS...: shmq-trace in the background (stdout in OUT, stderr in OUT.err);
# returns once it traces (bounded, 30 s).  TRACER_PID holds its pid.
tracer_start() {
    local out=$1 i=0
    shift
    "$TRACE" "$@" >"$out" 2>"$out.err" &
    TRACER_PID=$!
    bg_add "$TRACER_PID"
    while [ $i -lt 300 ]; do
        grep -q "; tracing" "$out.err" 2>/dev/null && return 0
        alive "$TRACER_PID" || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# tracer_stop: SIGINT, then wait for its report (bounded, 30 s).
tracer_stop() {
    local i=0
    kill -INT "$TRACER_PID" 2>/dev/null
    while alive "$TRACER_PID" && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    wait "$TRACER_PID"
}

# jq_trace FILE EXPR: a perl expression over the report $j (JSON::PP), printed.
jq_trace() {
    perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or exit 1;
        my $j = eval { JSON::PP->new->decode(<$f>) } or exit 1; my $v = eval $ARGV[1];
        print defined $v ? "$v\n" : "undef\n"' "$1" "$2"
}

# ---- the probes in the files ------------------------------------------------------------
for pair in shmq-writer:append shmq-flusher:flush shmq-flusher:flush_error \
    shmq-dispatcher:dispatch shmq-writer:worker_start shmqd:worker_exit shmqd:recovery \
    shmqctl:produce shmqctl:pull; do
    bin=${pair%%:*}
    probe=${pair#*:}
    args=$(probe_args "$T/bin/$bin" "$probe")
    ok $([ -n "$args" ] && echo 0 || echo 1) "$bin has the shmq:$probe probe ($args)"
done
# Every argument a register or a constant: libbpf reads no base+index memory operand.
bad=$(for b in shmq-writer shmq-dispatcher shmq-flusher shmqd shmqctl; do
    readelf -n "$T/bin/$b" | grep 'Arguments:' | grep '('
done | head -3)
is "$bad" "" "every probe argument is a register or a constant"
# Every probe has its semaphore (its arguments are computed only while a tracer holds it).
bad=$(for b in shmq-writer shmq-dispatcher shmq-flusher shmqd shmqctl; do
    readelf -n "$T/bin/$b" | grep 'Semaphore: 0x0*,\{0,1\}$'
    readelf -n "$T/bin/$b" | grep -c 'Semaphore: 0x0*[1-9a-f]' | grep -qx 0 && echo "$b: none"
done | head -3)
is "$bad" "" "every probe has a semaphore, which the tracer raises"

# ---- refusals ---------------------------------------------------------------------------
"$TRACE" --store "$STORE" --duration soon >"$T/bad.out" 2>"$T/bad.err"
is $? 2 "--duration soon: usage error"
grep -q "not a number of seconds" "$T/bad.err"
ok $? "the bad duration is named" || diag "$T/bad.err"
"$TRACE" >"$T/bad.out" 2>"$T/bad.err"
is $? 2 "nothing to trace: usage error"
"$TRACE" --store "$STORE" >"$T/bad.out" 2>"$T/bad.err"
is $? 1 "a store that is not running: exit 1"
grep -q "not running" "$T/bad.err"
ok $? "the store that is not running is named" || diag "$T/bad.err"

# ---- a store started under the tracer: recovery and worker starts -------------------------
mkdir -p "$T/bins"
tracer_start "$T/start.json" --json --binary "$SHMQD" --binary "$T/bin/shmq-writer" \
    --binary "$T/bin/shmq-dispatcher"
ok $? "the tracer attaches to the daemon files before the store starts" || diag "$T/start.json.err"
start_broker
ok $? "broker starts" || diag "$T/shmqd.log"
tracer_stop
is "$(jq_trace "$T/start.json" 'scalar grep { $_->{event} eq "recovery" } @{$j->{log}}' |
    awk '$1 > 0 { print "yes" }')" yes "the recovery steps of the start are traced"
# (Without --store every process running the files counts: other stores' too.)
wpid=$(worker_pid writer)
dpid=$(worker_pid dispatcher)
is "$(jq_trace "$T/start.json" 'join(",", sort map { $_->{text} } grep {
    $_->{event} eq "worker_start" && ($_->{pid} == '"${wpid:-0}"' || $_->{pid} == '"${dpid:-0}"') }
    @{$j->{log}})')" "dispatcher,writer" "the writer's and the dispatcher's starts are traced, by role and pid"

# ---- a traced load ------------------------------------------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TraceT --queues 4 >/dev/null 2>"$T/topic.err"
ok $? "topic created" || diag "$T/topic.err"
# A second store on the same files, loaded at the same time: not this store's.
"$SHMQD" --store "$T/other" $SMALL >>"$T/other.log" 2>&1 &
OTHER_PID=$!
bg_add "$OTHER_PID"
i=0
until "$CTL" status --store "$T/other" $SMALL >/dev/null 2>&1 || [ $i -ge 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
"$CTL" topic --store "$T/other" $SMALL create OtherT --queues 2 >/dev/null 2>"$T/other-topic.err"
ok $? "a second store runs the same files" || diag "$T/other.log"
tracer_start "$T/load.json" --store "$STORE" --binary "$CTL" --json --top 3
ok $? "the tracer attaches to the running store" || diag "$T/load.json.err"
grep -q "probes in .*shmq-writer" "$T/load.json.err"
ok $? "it found the writer's file through the control block" || diag "$T/load.json.err"
"$CTL" send --store "$T/other" $SMALL OtherT other-body --count 500 >"$T/other-send.out" \
    2>"$T/other-send.err" &
OTHER_SEND=$!
"$CTL" send --store "$STORE" $SMALL TraceT traced-body --count $COUNT >"$T/send.out" 2>"$T/send.err"
ok $? "$COUNT messages sent" || diag "$T/send.err"
wait "$OTHER_SEND"
ok $? "and 500 to the other store at the same time" || diag "$T/other-send.err"
"$CTL" consume --store "$STORE" $SMALL TraceT --group TraceG --from first --count $COUNT \
    --timeout 20000 >"$T/consume.out" 2>"$T/consume.err"
is "$(count_lines 'body=traced-body' "$T/consume.out")" $COUNT "$COUNT messages consumed" ||
    diag "$T/consume.err"
# Every record flushed before the tracer stops (ASYNC_FLUSH flushes within flushIntervalCommitLog).
wait_pos flushed
is "$(position flushed)" "$(position wrote)" "the log is flushed to its end"
# A worker killed and restarted under the tracer.
old=$(worker_pid dispatcher)
kill -KILL "$old"
wait_restarted dispatcher "$old" 300
ok $? "the killed dispatcher runs again" || diag "$T/shmqd.log"
tracer_stop
ok $? "the tracer stops on SIGINT with exit 0" || diag "$T/load.json.err"

J="$T/load.json"
is "$(jq_trace "$J" '$j->{messages}{produce}')" $COUNT "produce fired for each message sent"
is "$(jq_trace "$J" '$j->{messages}{append}')" $COUNT "append counted each message"
is "$(jq_trace "$J" '$j->{messages}{dispatch}')" $COUNT "dispatch fired for each message"
is "$(jq_trace "$J" '$j->{messages}{pull}')" $COUNT "pull fired for each message consumed"
is "$(jq_trace "$J" 'my $s = 0; $s += $_ for values %{$j->{lost}}; $s')" 0 "no event lost"
is "$(jq_trace "$J" '$j->{other_processes} >= 1000 ? 1 : 0')" 1 \
    "the other store's events were seen and left out (at least its 500 produces and appends)"
is "$(jq_trace "$J" 'join(",", map { $_->{topic} } @{$j->{topics}})')" "TraceT" \
    "no topic of the other store is counted"
for st in enqueue_to_append append_to_flush append_to_dispatch dispatch_to_pull enqueue_to_pull; do
    is "$(jq_trace "$J" "\$j->{stages}{$st}{count}")" $COUNT "stage $st measured for every message"
done
is "$(jq_trace "$J" '$j->{stages}{flush_duration}{count} >= 1 ? 1 : 0')" 1 \
    "at least one flush's duration measured"
is "$(jq_trace "$J" '$j->{stages}{enqueue_to_pull}{mean_us} >= $j->{stages}{enqueue_to_append}{mean_us} &&
    $j->{stages}{enqueue_to_pull}{mean_us} >= $j->{stages}{append_to_dispatch}{mean_us} ? 1 : 0')" 1 \
    "end to end is never shorter than its stages (means over the same messages)"
is "$(jq_trace "$J" 'my $s = $j->{stages}{append_to_flush}; my $c = 0;
    $c += $_->{count} for @{$s->{buckets}}; $c')" $COUNT "the histogram's buckets add up to its count"
is "$(jq_trace "$J" '$j->{topics}[0]{topic} . ":" . $j->{topics}[0]{messages}')" "TraceT:$COUNT" \
    "the top topic is the loaded one, at its count"
is "$(jq_trace "$J" 'my ($e) = grep { $_->{event} eq "worker_exit" } @{$j->{log}};
    $e ? "$e->{text}:$e->{status}" : "none"')" "dispatcher:-9" \
    "the killed dispatcher's exit is traced with its signal"
is "$(jq_trace "$J" 'scalar grep { $_->{event} eq "worker_start" && $_->{text} eq "dispatcher" }
    @{$j->{log}}')" 1 "its restart is traced"

# ---- the text report ----------------------------------------------------------------------
tracer_start "$T/text.out" --store "$STORE" --binary "$CTL"
ok $? "the tracer attaches again (text report)"
"$CTL" send --store "$STORE" $SMALL TraceT text-body --count 100 >/dev/null 2>&1
tracer_stop
grep -q "^enqueue_to_append: 100 " "$T/text.out"
ok $? "the text report counts the stage" || diag "$T/text.out"
grep -q "^  TraceT " "$T/text.out"
ok $? "and names the top topic" || diag "$T/text.out"

kill -TERM "$OTHER_PID"
wait "$OTHER_PID"
ok $? "the second store stops cleanly" || diag "$T/other.log"
stop_broker
ok $? "broker stops cleanly" || diag "$T/shmqd.log"
done_testing
