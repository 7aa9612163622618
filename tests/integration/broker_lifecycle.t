#!/bin/sh
# The broker's life cycle with real processes: shmqd starts its three
# workers (visible in ps by name), restarts each one killed with SIGKILL and
# one restarted by `shmqctl restart`, refuses a second master on the same
# store, stops in order on SIGTERM (exit 0, abort removed, control block
# gone, checkpoint at the end of the log); when the master is killed the
# workers exit by themselves and the next master recovers (abnormal); a new
# master refuses to start while a worker of the old one still holds the
# store; a bad configuration value exits 2 naming the key.
# TAP output; every wait is a bounded poll.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
broker_init lifecycle

# wait_gone PID [TENTHS]: poll until the process is gone (or a zombie); 0 when it is.
wait_gone() {
    lim=${2:-100}
    i=0
    while alive "$1" && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ! alive "$1"
}

# checkpoint_confirm: confirmPhyOffset (big-endian long at offset 32) of the store's checkpoint.
checkpoint_confirm() {
    perl -e 'open(my $f, "<", $ARGV[0]) or exit 1; binmode $f; seek($f, 32, 0);
        read($f, my $b, 8) == 8 or exit 1; my ($hi, $lo) = unpack("NN", $b);
        print $hi * 4294967296 + $lo, "\n"' "$STORE/checkpoint"
}

# ---- start --------------------------------------------------------------------------

start_broker
ok $? "shmqd starts: state running, writer, flusher and dispatcher running"
is "$(store_state)" "running" "status --json reports state running"
is "$(status_json | perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
    print scalar(grep { $_->{state} eq "running" && $_->{pid} > 0 &&
        $_->{name} =~ /^(writer|flusher|dispatcher)$/ } @{$j->{workers}}), "\n"')" \
    "3" "status --json lists the writer, flusher and dispatcher running with pids"
"$CTL" status --store "$STORE" >"$T/status.txt" 2>&1
ok $? "status (text) exits 0"
grep -q "running" "$T/status.txt"
ok $? "status (text) names the state"

for w in writer flusher dispatcher; do
    p=$(worker_field "$w" pid)
    ps -C "shmq-$w" -o pid= | grep -qw "$p"
    ok $? "ps shows the $w as shmq-$w (pid $p)"
done

# ---- messages in, so that the stop has something to flush and checkpoint -----------

sent=0
for i in 1 2 3; do
    "$CTL" send --store "$STORE" $SMALL TopicTest "hello $i" >>"$T/send.out" 2>&1 &&
        sent=$((sent + 1))
done
is "$sent" "3" "three messages sent"
[ "$(position wrote)" -gt 0 ] 2>/dev/null
ok $? "wrote advanced past 0"

# ---- crashes and restarts -------------------------------------------------------------

for w in writer flusher dispatcher; do
    old=$(worker_field "$w" pid)
    r0=$(worker_field "$w" restarts)
    kill -KILL "$old"
    wait_restarted "$w" "$old"
    ok $? "kill -9 of the $w: it runs again under a new pid"
    is "$(worker_field "$w" restarts)" "$((r0 + 1))" "the $w's restarts went from $r0 to $((r0 + 1))"
    grep -q "the $w (pid $old) was killed by signal 9" "$T/shmqd.log"
    ok $? "shmqd logged the $w's death"
done

old=$(worker_pid dispatcher)
r0=$(worker_field dispatcher restarts)
"$CTL" restart --store "$STORE" $SMALL dispatcher >"$T/restart.out" 2>&1
ok $? "shmqctl restart dispatcher exits 0"
new=$(worker_field dispatcher pid)
grep -q "pid $old -> $new" "$T/restart.out" || { diag "$T/restart.out"; false; }
ok $? "restart printed the old and the new pid ($old -> $new)"
[ -n "$new" ] && [ "$new" != "$old" ] && [ "$new" -gt 0 ]
ok $? "the dispatcher has a new pid"
is "$(worker_field dispatcher state)" "running" "the restarted dispatcher is running"
is "$(worker_field dispatcher restarts)" "$((r0 + 1))" "a requested restart counts in restarts"
note_workers

# ---- a second master on the same store ----------------------------------------------------

"$SHMQD" --store "$STORE" $SMALL >"$T/second.log" 2>&1 &
second=$!
wait_pid "$second" 100
rc=$?
[ "$rc" -ne 0 ]
ok $? "a second shmqd on the running store exits non-zero ($rc)"
grep -q "locked by pid $SHMQD_PID" "$T/second.log" || { diag "$T/second.log"; false; }
ok $? "its message names the running master (pid $SHMQD_PID)"
is "$(store_state)" "running" "the first master still runs"

# ---- orderly stop ---------------------------------------------------------------------------

wrote=$(position wrote)
workers=""
for w in writer flusher dispatcher; do
    workers="$workers $(worker_field "$w" pid)"
done
shm=$(ctl_shm_name)
[ -e "/dev/shm/$shm" ]
ok $? "the control block /dev/shm/$shm exists while running"
stop_broker
is "$STOP_RC" "0" "SIGTERM: shmqd exits 0"
gone=0
for p in $workers; do
    wait_gone "$p" 50 || gone=1
done
ok $gone "every worker exited"
for s in draining finishing stopped; do
    grep -q "state: .* -> $s" "$T/shmqd.log"
    ok $? "the stop went through state $s"
done
[ ! -e "$STORE/abort" ]
ok $? "abort removed after the clean stop"
[ ! -e "/dev/shm/$shm" ] && [ ! -e "/dev/shm/$shm.cons" ]
ok $? "the control block is gone from /dev/shm"
is "$(checkpoint_confirm)" "$wrote" "the checkpoint confirms the whole log ($wrote)"
"$CTL" status --store "$STORE" $SMALL >"$T/status.out" 2>&1
rc=$?
is "$rc" "1" "status of the stopped store exits 1"
grep -q "is not running" "$T/status.out"
ok $? "status says the store is not running"

# ---- the master dies: workers follow, the next master recovers -------------------------------

: >"$T/shmqd.log"
start_broker
ok $? "shmqd starts again"
grep -q "recovery (normal" "$T/shmqd.log"
ok $? "after a clean stop the recovery is normal"
workers=$(all_worker_pids)
kill -KILL "$SHMQD_PID"
wait "$SHMQD_PID" 2>/dev/null
SHMQD_PID=""
gone=0
for p in $workers; do
    wait_gone "$p" 100 || gone=1
done
ok $gone "kill -9 of shmqd: every worker exits on its own"
[ -e "$STORE/abort" ]
ok $? "abort stays after the master died"

: >"$T/shmqd.log"
start_broker
ok $? "a new shmqd starts on the store of the dead master"
grep -q "recovery (abnormal" "$T/shmqd.log" || diag "$T/shmqd.log"
ok $? "it logs an abnormal recovery"

# ---- an orphaned worker still holds the store -------------------------------------------------

stopped=$(worker_field flusher pid)
others=$(all_worker_pids | tr ' ' '\n' | grep -vx "$stopped" | tr '\n' ' ')
kill -STOP "$stopped"
kill -KILL "$SHMQD_PID"
wait "$SHMQD_PID" 2>/dev/null
SHMQD_PID=""
gone=0
for p in $others; do
    wait_gone "$p" 100 || gone=1
done
ok $gone "the running workers of the killed master exit"
alive "$stopped"
ok $? "the stopped flusher (pid $stopped) is still there"

"$SHMQD" --store "$STORE" $SMALL >"$T/orphan.log" 2>&1 &
third=$!
wait_pid "$third" 100
rc=$?
[ "$rc" -ne 0 ]
ok $? "a new shmqd refuses to start while the old flusher holds the store ($rc)"
grep -q "pid $stopped" "$T/orphan.log" || { diag "$T/orphan.log"; false; }
ok $? "the refusal names the old worker (pid $stopped)"
! grep -q -e "-> recovering" "$T/orphan.log" && [ -e "$STORE/abort" ]
ok $? "the refused master did not run recovery (abort stays)"

kill -CONT "$stopped"
wait_gone "$stopped" 100
ok $? "resumed, the old flusher exits on its own (its master is gone)"

: >"$T/shmqd.log"
start_broker
ok $? "the next shmqd starts"
grep -q "recovery (abnormal" "$T/shmqd.log"
ok $? "and recovers the store (abnormal)"
stop_broker
is "$STOP_RC" "0" "and stops cleanly"

# ---- configuration errors ---------------------------------------------------------------------

"$SHMQD" --store "$T/bad" --set flushDiskType=SOMETIMES >"$T/bad.log" 2>&1 &
bad=$!
wait_pid "$bad" 100
is "$?" "2" "a bad configuration value: exit 2"
grep -q "flushDiskType" "$T/bad.log" || { diag "$T/bad.log"; false; }
ok $? "the message names the key"
[ ! -e "$T/bad/lock" ]
ok $? "nothing was created for the refused store"

"$SHMQD" --store "$T/bad" --frobnicate >"$T/bad.log" 2>&1 &
bad=$!
wait_pid "$bad" 100
is "$?" "2" "an unknown option: exit 2"

# ---- an optional worker not installed ------------------------------------------------------
# shmqd runs the workers it finds next to itself; a missing optional one is named in the log.
# (A copy of shmqd: it looks next to its resolved executable; the workers may be links.)
mkdir "$T/bin"
cp "$BUILD/shmqd" "$T/bin/shmqd"
for b in shmq-writer shmq-flusher shmq-dispatcher shmq-indexer shmq-cleaner; do
    ln -s "$BUILD/$b" "$T/bin/$b"
done
echo "---- without the scheduler ----" >>"$T/shmqd.log"
SHMQD="$T/bin/shmqd"
start_broker
ok $? "shmqd starts without the scheduler program" || diag "$T/shmqd.log"
sed -n '/---- without the scheduler ----/,$p' "$T/shmqd.log" |
    grep -q "the scheduler is not installed ($T/bin/shmq-scheduler: No such file or directory)"
ok $? "the log says the scheduler is not installed and where it was looked for" ||
    diag "$T/shmqd.log"
stop_broker
ok $? "and stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

done_testing
