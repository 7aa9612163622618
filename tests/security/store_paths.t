#!/bin/sh
# The store's remaining paths give others nothing and follow no link:
# timerwheel, config/timercheck, config/delaycheck and the timer log made
# by the scheduler are 0640 (directories 0750) whatever the umask; a store root made by shmqctl
# (and its missing parents) is 0750; a worker started while a symbolic link
# sits at lock refuses it naming it and locks nothing through it; `shmqctl
# status` with a FIFO at lock exits with an error naming it instead of
# waiting for a writer; a topic change (the table locks) with a link at lock
# fails naming it.  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
. "${SHMQ_SRC:-/work/main}/tests/security/common.sh"
broker_init sec-paths
OUT="$T/outside"
trap '[ -L "$STORE/lock" ] || [ -p "$STORE/lock" ] && mv -f "$STORE/lock.orig" "$STORE/lock"; broker_cleanup' EXIT

# ---- a store root made by shmqctl ---------------------------------------------------------

umask 022
"$CTL" gen --store "$T/new/parent/store" $SMALL --topic TopicGen --count 3 --size 100 >"$T/gen.out" 2>&1
ok $? "shmqctl gen makes a new store in missing directories (umask 022)" || diag "$T/gen.out"
is "$(stat -c %a "$T/new/parent/store")" "750" "the new store root is 0750"
is "$(stat -c %a "$T/new/parent")" "750" "its missing parent is 0750 too"

# ---- timer files --------------------------------------------------------------------------

umask 000
start_broker
ok $? "shmqd starts on a new store (umask 000)" || diag "$T/shmqd.log"
"$CTL" send --store "$STORE" $SMALL TopicTimer "later" --deliver-after 600000 >"$T/send.out" 2>&1
ok $? "a message to deliver in 10 minutes is sent" || diag "$T/send.out"
i=0
while { [ ! -f "$STORE/timerwheel" ] || [ -z "$(ls "$STORE/timerlog" 2>/dev/null)" ]; } && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -f "$STORE/timerwheel" ] && [ -f "$STORE/config/timercheck" ]
ok $? "the scheduler made its timer files" || diag "$T/shmqd.log"
umask 022
is "$(stat -c %a "$STORE/timerwheel")" "640" "timerwheel is 0640"
is "$(stat -c %a "$STORE/config/timercheck")" "640" "config/timercheck is 0640"
is "$(stat -c %a "$STORE/config/delaycheck")" "640" "config/delaycheck is 0640"
is "$(stat -c %a "$STORE/timerlog")" "750" "timerlog/ is 0750"
seg=$(ls "$STORE/timerlog" | head -1)
is "$(stat -c %a "$STORE/timerlog/$seg" 2>/dev/null)" "640" "a timer log segment is 0640"
find "$STORE" -perm /o=rwx >"$T/open.list"
is "$(wc -l <"$T/open.list" | tr -d ' ')" "0" "no file or directory of the store gives others any permission"
[ -s "$T/open.list" ] && diag "$T/open.list"

# ---- a link at lock when a worker starts ----------------------------------------------------

printf 'not a lock\n' >"$OUT"
chmod 600 "$OUT"
pid=$(worker_pid cleaner)
[ -n "$pid" ] && [ "$pid" -gt 0 ]
ok $? "the cleaner runs (pid $pid)"
mv "$STORE/lock" "$STORE/lock.orig"
ln -s "$OUT" "$STORE/lock"
kill -KILL "$pid"
i=0
while ! grep -q "cannot take the workers' lock" "$T/shmqd.log" && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep "ERROR.*cleaner" "$T/shmqd.log" | grep -q "cannot take the workers' lock on $STORE/lock: $STORE/lock is a symbolic link"
ok $? "the restarted cleaner refuses the link at lock, naming it" || diag "$T/shmqd.log"
ino=$(stat -c %i "$OUT")
grep -q ":$ino " /proc/locks
ok $((! $?)) "no lock is taken on the file the link points at"
is "$(cat "$OUT")" "not a lock" "and that file is untouched"
mv -f "$STORE/lock.orig" "$STORE/lock"
wait_restarted cleaner "$pid" 300
ok $? "with lock back in place the cleaner runs again" || diag "$T/shmqd.log"

# ---- a FIFO at lock for shmqctl status ------------------------------------------------------

mv "$STORE/lock" "$STORE/lock.orig"
mkfifo -m 600 "$STORE/lock"
timeout -s KILL 20 "$CTL" status --store "$STORE" $SMALL >"$T/status.out" 2>&1
rc=$?
[ "$rc" -ne 137 ]
ok $? "shmqctl status does not wait on a FIFO at lock (exit $rc)"
is "$rc" "1" "it exits 1"
grep -q "$STORE/lock is a FIFO, not a regular file" "$T/status.out"
ok $? "naming the FIFO" || diag "$T/status.out"
rm -f "$STORE/lock"
mv "$STORE/lock.orig" "$STORE/lock"
"$CTL" status --store "$STORE" $SMALL >"$T/status2.out" 2>&1
ok $? "with lock back in place status works" || diag "$T/status2.out"

# ---- a link at lock for the table locks (shmqctl topic on a running store) ---------------------

mv "$STORE/lock" "$STORE/lock.orig"
ln -s "$OUT" "$STORE/lock"
timeout -s KILL 20 "$CTL" topic --store "$STORE" $SMALL create TopicLink >"$T/topic.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 137 ]
ok $? "a topic change with a link at lock fails (exit $rc)"
grep -q "$STORE/lock is a symbolic link" "$T/topic.out"
ok $? "naming the link" || diag "$T/topic.out"
grep -q ":$(stat -c %i "$OUT") " /proc/locks
ok $((! $?)) "no lock is taken on the file the link points at"
rm -f "$STORE/lock"
mv "$STORE/lock.orig" "$STORE/lock"
"$CTL" topic --store "$STORE" $SMALL create TopicLink >"$T/topic2.out" 2>&1
ok $? "with lock back in place the topic is created" || diag "$T/topic2.out"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"

done_testing
