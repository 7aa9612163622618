#!/bin/sh
# shmqd as a systemd service (init/shmqd.service, Type=notify):
#   1. systemd-analyze verify accepts the unit as `make install` fills it in;
#   2. under a fake service manager (a datagram socket in NOTIFY_SOCKET, with
#      WATCHDOG_USEC set) shmqd reports STATUS=recovering, then READY=1 only
#      once every worker runs, WATCHDOG=1 while it runs, and STOPPING=1 on
#      SIGTERM before it exits 0;
#   3. a failed start (a bad configuration) sends no READY=1.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init service-unit

# ---- 1. the unit ---------------------------------------------------------------------------
sed "s|@SBINDIR@|$BUILD|; s|@SYSCONFDIR@|$T/etc|" "$SRC/init/shmqd.service.in" >"$T/shmqd.service"
grep -q '^Type=notify$' "$T/shmqd.service" && ! grep -q '@[A-Z]*@' "$T/shmqd.service"
ok $? "the unit is Type=notify and every placeholder is filled in"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify --man=no "$T/shmqd.service" >"$T/verify.err" 2>&1 &&
        ! grep -q . "$T/verify.err"
    ok $? "systemd-analyze verify accepts the unit without a warning" || diag "$T/verify.err"
else
    ok 0 "# SKIP systemd-analyze not installed"
fi

# ---- 2. the notifications ------------------------------------------------------------------
# listen SOCK OUT: record each datagram as one line (newlines inside become '|').
listen() {
    perl -MIO::Socket::UNIX -MSocket -e '
        my ($path, $out) = @ARGV;
        unlink $path;
        my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "socket: $!";
        open(my $f, ">>", $out) or die "$out: $!";
        $f->autoflush(1);
        while (defined $s->recv(my $m, 65536)) { $m =~ s/\n+$//; $m =~ s/\n/|/g; print $f "$m\n"; }
    ' "$1" "$2" &
    bg_add $!
    local i=0
    while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# line_no FILE REGEX: the number of the first line matching REGEX (999999 if none).
line_no() {
    local l
    l=$(grep -n -m 1 -e "$2" "$1" 2>/dev/null | cut -d: -f1)
    echo "${l:-999999}"
}

listen "$T/notify.sock" "$T/notify.log"
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1000000 \
    "$SHMQD" --store "$STORE" $SMALL >>"$T/shmqd.log" 2>&1 &
SHMQD_PID=$!
wait_line "$T/notify.log" '^READY=1$' 600
ok $? "shmqd sends READY=1" || diag "$T/notify.log"
wait_workers 100
ok $? "the workers run" || diag "$T/shmqd.log"
ready=$(line_no "$T/notify.log" '^READY=1$')
[ "$(line_no "$T/notify.log" '^STATUS=recovering')" -lt "$ready" ]
ok $? "STATUS=recovering comes before READY=1" || diag "$T/notify.log"
# The STATUS just before READY says every worker runs.
sed -n "1,${ready}p" "$T/notify.log" | grep '^STATUS=' | tail -n 1 >"$T/last-status"
grep -Eq '^STATUS=running, ([0-9]+) of \1 workers running$' "$T/last-status"
ok $? "READY=1 follows a STATUS with every worker running ($(cat "$T/last-status"))" ||
    diag "$T/notify.log"
n_running=$(status_json | perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
    print scalar grep { $_->{state} eq "running" } @{$j->{workers}}')
is "$(sed 's/.* of \([0-9]*\) workers.*/\1/' "$T/last-status")" "$n_running" \
    "the count in STATUS is the workers shmqctl status shows running"
is "$(count_lines '^READY=1$' "$T/notify.log")" "1" "READY=1 is sent once"
wait_line "$T/notify.log" '^WATCHDOG=1$' 100 && sleep 2
[ "$(count_lines '^WATCHDOG=1$' "$T/notify.log")" -ge 2 ]
ok $? "WATCHDOG=1 is sent again and again (every half WATCHDOG_USEC)" || diag "$T/notify.log"
stop_broker
ok $? "SIGTERM stops shmqd cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"
stopping=$(line_no "$T/notify.log" '^STOPPING=1$')
[ "$stopping" -lt 999999 ] && [ "$stopping" -gt "$ready" ]
ok $? "STOPPING=1 is sent after READY=1 when the stop begins" || diag "$T/notify.log"
tail -n 1 "$T/notify.log" | grep -q '^STATUS=stopped'
ok $? "the last STATUS is stopped ($(tail -n 1 "$T/notify.log"))" || diag "$T/notify.log"

# ---- 3. a failed start ---------------------------------------------------------------------
: >"$T/notify.log"
NOTIFY_SOCKET="$T/notify.sock" "$SHMQD" --store "$STORE" $SMALL --set flushDiskType=NEVER \
    >>"$T/bad.err" 2>&1
rc=$?
is "$rc" "2" "a bad configuration exits 2 (RestartPreventExitStatus=2 in the unit)"
sleep 0.5
is "$(count_lines '^READY=1$' "$T/notify.log")" "0" "a failed start sends no READY=1"

done_testing
