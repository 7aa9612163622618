#!/bin/sh
# A full /dev/shm (world-writable, often small: Docker's default is 64 MB)
# is an error at creation or attach, never a signal later.  In a private
# mount namespace a small tmpfs is mounted over /dev/shm:
#   - too small for the store's shared memory: shmqd exits 1 saying that
#     /dev/shm is full and how many bytes it needs;
#   - just large enough for it: shmqd starts, every object it made is fully
#     allocated, and producers get their rings (not in /dev/shm) and send:
#     every message is acknowledged and read back, none is lost to a
#     SIGBUS.
# Skipped when mount namespaces are not available (needs root).  TAP
# output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
if ! unshare -m true 2>/dev/null; then
    echo "1..0 # SKIP no private mount namespace (unshare -m needs root)"
    exit 0
fi
broker_init sec-shm-full

# The sizes of the store's objects, from a run on the real /dev/shm.
start_broker
ok $? "shmqd starts on a new store" || diag "$T/shmqd.log"
SHM=$(ctl_shm_name)
need=$(stat -c %s "/dev/shm/$SHM" "/dev/shm/$SHM.cons" "/dev/shm/$SHM.wake" | awk '{ s += $1 } END { print s }')
[ -n "$need" ] && [ "$need" -gt 0 ]
ok $? "the store's shared memory takes $need bytes"
stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"

# in_small_shm KB CMD: run CMD (a shell command) with a tmpfs of KB KiB over /dev/shm.
in_small_shm() {
    unshare -m sh -c "mount -t tmpfs -o size=$1k tmpfs /dev/shm && $2"
}

in_small_shm 256 "timeout -s KILL 60 '$SHMQD' --store '$STORE' $SMALL" >"$T/small.log" 2>&1
rc=$?
is "$rc" "1" "with 256 KiB of /dev/shm shmqd exits 1 (not killed by a signal)"
grep -q "shared memory /dev/shm is full: /dev/shm/$SHM.* needs [0-9][0-9]* bytes" "$T/small.log"
ok $? "its error says /dev/shm is full and how many bytes it needs" || diag "$T/small.log"

kb=$(( (need + 4095) / 1024 + 8 ))
cat >"$T/run.sh" <<EOS
'$SHMQD' --store '$STORE' $SMALL >'$T/fit.log' 2>&1 &
pid=\$!
i=0
while [ \$i -lt 300 ] && ! grep -q 'state: recovering -> running' '$T/fit.log'; do sleep 0.1; i=\$((i + 1)); done
for o in /dev/shm/$SHM /dev/shm/$SHM.cons /dev/shm/$SHM.wake; do
    echo "alloc \$(stat -c '%s %b %B' \$o)"
done
'$CTL' send --store '$STORE' $SMALL TopicF "fits" --count 200 >'$T/fit-send.out' 2>&1
echo "send \$?"
'$HELPERS/consume' '$STORE' TopicF GroupF --count 200 --timeout 20000 >'$T/fit-cons.out' 2>'$T/fit-cons.err'
echo "consume \$?"
kill -TERM \$pid
wait \$pid
echo "shmqd \$?"
EOS
in_small_shm "$kb" "sh '$T/run.sh'" >"$T/fit.out" 2>&1
grep -q "^send 0$" "$T/fit.out"
ok $? "with $kb KiB of /dev/shm, a producer sends 200 messages (all acknowledged)" ||
    { diag "$T/fit.out"; diag "$T/fit-send.out"; diag "$T/fit.log"; }
grep -q "^consume 0$" "$T/fit.out" && [ "$(grep -c '^msg ' "$T/fit-cons.out")" -eq 200 ]
ok $? "and a consumer reads all 200" || diag "$T/fit-cons.err"
is "$(grep -c '^shmqd 0$' "$T/fit.out")" "1" "shmqd stops cleanly"
awk '$1 == "alloc" && $3 * $4 < $2 { bad++ } $1 == "alloc" { n++ } END { exit !(n == 3 && !bad) }' \
    "$T/fit.out"
ok $? "its three objects were allocated in full at creation" || diag "$T/fit.out"
! grep -qi "bus error\|SIGBUS\|signal 7" "$T/fit.out" "$T/fit.log" "$T/fit-send.out"
ok $? "no SIGBUS anywhere"

done_testing
