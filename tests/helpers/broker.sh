# Shared shell functions of the broker's TAP tests (tests/integration/*.t,
# tests/crash/*.t): TAP output, a temporary store with small segments, shmqd
# started in the background with its log in the test directory, bounded
# waits on `shmqctl status --json`, and a cleanup trap that stops every
# process the test started and removes the store and its control block.
#
# Usage, at the top of a test:  . "${SHMQ_SRC:-...}/tests/helpers/broker.sh"
#                               broker_init NAME
# POSIX sh plus `local` (dash, bash, busybox) and perl (JSON::PP,
# Compress::Zlib, Math::BigInt).  Functions keep their variables local, so a
# test's own loop variables survive the calls.

BUILD=${SHMQ_BUILD:-/work/main/build}
CTL="$BUILD/shmqctl"
SHMQD="$BUILD/shmqd"
HELPERS="$BUILD/tests/helpers"
# Small segments so that files roll during a test.
SMALL="--set mappedFileSizeCommitLog=1048576 --set mappedFileSizeConsumeQueue=6000 --set maxMessageSize=65536 --set maxHashSlotNum=4096 --set maxIndexNum=16384"

. "${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/helpers/tap.sh"
T=""
STORE=""
SHMQD_PID=""
BG_PIDS=""
WORKER_PIDS=""

# ---- TAP ------------------------------------------------------------------------

# Print the plan and exit with the result.  First, one more test: no
# sanitizer (ASan, LSan, UBSan) report in any log or stderr file of the test
# (shmqd.log holds every daemon's stderr).
done_testing() {
    # The files named, not grep's status: that is 2 when a pattern matches no file (a
    # test without any *.err), whatever the files it did read hold.
    if [ -n "$T" ] && grep -l 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' \
        "$T"/*.log "$T"/*.err >"$T/sanitizer.files" 2>/dev/null || [ -s "$T/sanitizer.files" ]; then
        ok 1 "no sanitizer report in the processes' output"
        # On stderr, which prove shows also when it is not verbose (make test): the
        # report itself is the only trace of a rare one.
        while read -r f; do
            echo "#   ${f##*/}:"
            grep -m 5 -A 24 'ERROR: \|runtime error:' "$f" | sed 's/^/#   /'
        done <"$T/sanitizer.files" >&2
    else
        ok 0 "no sanitizer report in the processes' output"
    fi
    echo "1..$n"
    [ "$failed" -eq 0 ]
    exit $?
}
# JSON field $1 of each JSON line on stdin (one value per line; booleans as 1/0).
jfield() {
    perl -MJSON::PP -e 'my $k = shift; while (my $l = <STDIN>) {
        my $v = JSON::PP->new->decode($l)->{$k}; $v = $v ? 1 : 0 if JSON::PP::is_bool($v);
        print defined $v ? $v : "null", "\n" }' "$1"
}
# Count lines matching regex $1 in file $2 (0 when none or no file).
count_lines() {
    local c
    c=$(grep -c -e "$1" "$2" 2>/dev/null)
    echo "${c:-0}"
}

# ---- setup and cleanup --------------------------------------------------------------

# broker_init NAME: check the binaries, make the temporary directory, set the trap.
broker_init() {
    local b
    for b in "$CTL" "$SHMQD" "$BUILD/shmq-writer" "$BUILD/shmq-flusher" "$BUILD/shmq-dispatcher"; do
        if [ ! -x "$b" ]; then
            echo "Bail out! $b not built"
            exit 1
        fi
    done
    T=$(mktemp -d "/tmp/shmq-$1.XXXXXX") || exit 1
    STORE="$T/store"
    trap broker_cleanup EXIT
    trap 'exit 1' INT TERM
}

# The control block's shared-memory names for $STORE ("/shmq-<fnv1a64 of realpath>").
ctl_shm_name() {
    perl -MCwd=realpath -MMath::BigInt -e '
        my $p = realpath($ARGV[0]) // exit 1;
        my $h = Math::BigInt->from_hex("cbf29ce484222325");
        my $m = Math::BigInt->new(2)->bpow(64);
        for my $c (unpack("C*", $p)) {
            $h->bxor($c); $h->bmul("1099511628211"); $h->bmod($m);
        }
        my $x = $h->as_hex; $x =~ s/^0x//;
        printf "shmq-%016s\n", $x' "$STORE" | tr ' ' 0
}

# Is pid $1 one of our processes still alive (not a zombie)?
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# Stop pid $1 with SIGTERM, SIGKILL after $2 tenths of a second (default 50).
stop_pid() {
    local p=$1 lim=${2:-50} i=0
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null
    while alive "$p" && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$p" && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

broker_cleanup() {
    local p name
    for p in $BG_PIDS; do
        kill -KILL "$p" 2>/dev/null
    done
    if [ -n "$SHMQD_PID" ]; then
        stop_pid "$SHMQD_PID" 100
    fi
    for p in $WORKER_PIDS; do
        if grep -q shmq- "/proc/$p/cmdline" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    if [ -n "$STORE" ] && [ -d "$STORE" ]; then
        name=$(ctl_shm_name)
        if [ -n "$name" ]; then
            rm -f "/dev/shm/$name" "/dev/shm/$name.cons" "/dev/shm/$name.wake"
        fi
    fi
    # SHMQ_KEEP_TMP=1 keeps the directory of a run with a failed check, and names it.
    if [ -n "$SHMQ_KEEP_TMP" ] && [ "${failed:-0}" -gt 0 ]; then
        echo "# kept $T" >&2
    elif [ -n "$T" ]; then
        rm -rf "$T"
    fi
}

# Remember a background process for the cleanup trap.
bg_add() {
    BG_PIDS="$BG_PIDS $1"
}

# ---- the broker ----------------------------------------------------------------------

# status --json of the store on stdout (empty when not running).
status_json() {
    "$CTL" status --store "$STORE" $SMALL --json 2>/dev/null
}

# Store state ("running", ...), or "" when not running.
store_state() {
    status_json | jfield state 2>/dev/null
}

# worker_field NAME FIELD: a field of one worker in status --json.
# The pids of every worker the store runs (the optional ones too).
all_worker_pids() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = JSON::PP->new->decode(<STDIN>);
        print join(" ", grep { $_ > 0 } map { $_->{pid} } @{$j->{workers}}), "\n"'
}

# kill_store_all: kill -9 of the master and every worker at once (a power cut's process
# side); 0 once all of them are dead (waited for, 10 s at most), 1 if one lives on.
kill_store_all() {
    local allp i=0 p still
    allp=$(all_worker_pids)
    kill -KILL "$SHMQD_PID" $allp
    wait "$SHMQD_PID" 2>/dev/null
    SHMQD_PID=""
    while [ $i -lt 100 ]; do
        still=""
        for p in $allp; do
            alive "$p" && still=1
        done
        [ -z "$still" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

worker_field() {
    status_json | perl -MJSON::PP -e 'my ($w, $f) = @ARGV; local $/; my $j = eval {
        JSON::PP->new->decode(<STDIN>) } or exit 1; for (@{$j->{workers}}) {
        if ($_->{name} eq $w) { print $_->{$f}, "\n"; exit 0 } } exit 1' "$1" "$2"
}

# worker_pid NAME: the worker's pid once status shows one (bounded, 10 s: a status read
# can miss while the store is busy, a worker being restarted has none); empty when none.
worker_pid() {
    local i=0 p
    while [ $i -lt 100 ]; do
        p=$(worker_field "$1" pid)
        if [ -n "$p" ] && [ "$p" != 0 ]; then
            echo "$p"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# now_ms: the wall clock in milliseconds.
now_ms() {
    perl -MTime::HiRes=time -e 'printf "%d\n", time * 1000'
}

# position NAME: a position (wrote, flushed, dispatched, min) from status --json.
position() {
    status_json | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; print $j->{positions}{$ARGV[0]}, "\n"' "$1"
}

# wait_pos NAME [TENTHS]: poll until positions.NAME (indexed, dispatched, flushed) reaches
# positions.wrote; 0 when it did (bounded: 300 tenths of a second unless told, a loaded machine).
wait_pos() {
    local lim=${2:-300} i=0 w x
    while [ $i -lt "$lim" ]; do
        w=$(position wrote)
        x=$(position "$1")
        [ -n "$w" ] && [ "$w" = "$x" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_state STATE [TENTHS]: poll until the store reports STATE; 0 when it did.
wait_state() {
    local lim=${2:-200} i=0
    while [ $i -lt "$lim" ]; do
        [ "$(store_state)" = "$1" ] && return 0
        if [ -n "$SHMQD_PID" ] && ! alive "$SHMQD_PID"; then
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# Remember the current worker pids (for the cleanup trap).
note_workers() {
    local p
    for p in $(all_worker_pids 2>/dev/null); do
        WORKER_PIDS="$WORKER_PIDS $p"
    done
}

# wait_workers [TENTHS]: the writer, flusher and dispatcher report state
# running (one status call per try: a loaded machine starts processes slowly).
wait_workers() {
    local lim=${1:-200} i=0
    while [ $i -lt "$lim" ]; do
        if status_json | perl -MJSON::PP -e 'local $/; my $j = eval {
            JSON::PP->new->decode(<STDIN>) } or exit 1;
            my %s = map { $_->{name} => $_->{state} } @{$j->{workers}};
            exit((grep { ($s{$_} // "") ne "running" } qw(writer flusher dispatcher)) ? 1 : 0)'; then
            note_workers
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_line FILE REGEX [TENTHS]: a line of FILE matches REGEX.
wait_line() {
    local lim=${3:-300} i=0
    while ! grep -q -e "$2" "$1" 2>/dev/null && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    grep -q -e "$2" "$1" 2>/dev/null
}
# wait_in N [TENTHS]: the writer of $STORE has stored (and answered) N messages.
wait_in() {
    local lim=${2:-300} i=0
    while [ "$(status_json | jfield messages_in)" != "$1" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(status_json | jfield messages_in)" = "$1" ]
}
# start_broker [ARGS...]: shmqd in the background (stderr appended to $T/shmqd.log);
# returns 0 once the store is running and every worker runs.
start_broker() {
    "$SHMQD" --store "$STORE" $SMALL "$@" >>"$T/shmqd.log" 2>&1 &
    SHMQD_PID=$!
    wait_state running 300 && wait_workers 300
}

# stop_broker: SIGTERM shmqd and wait (bounded, 60 s); its exit status in STOP_RC.
stop_broker() {
    local i=0
    STOP_RC=""
    [ -n "$SHMQD_PID" ] || return 1
    kill -TERM "$SHMQD_PID" 2>/dev/null
    while alive "$SHMQD_PID" && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$SHMQD_PID"; then
        kill -KILL "$SHMQD_PID" 2>/dev/null
    fi
    wait "$SHMQD_PID"
    STOP_RC=$?
    SHMQD_PID=""
    [ "$STOP_RC" -eq 0 ]
}

# wait_restarted NAME OLD_PID [TENTHS]: the worker runs again under a new pid.
wait_restarted() {
    local lim=${3:-200} i=0 p s
    while [ $i -lt "$lim" ]; do
        p=$(worker_field "$1" pid)
        s=$(worker_field "$1" state)
        if [ -n "$p" ] && [ "$p" != "$2" ] && [ "$p" != 0 ] && [ "$s" = "running" ]; then
            WORKER_PIDS="$WORKER_PIDS $p"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_pid PID [TENTHS]: wait for a background process to end (bounded; killed
# after the limit).  Its exit status is returned.
wait_pid() {
    local lim=${2:-600} i=0
    while alive "$1" && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    wait "$1"
}

# ---- checks over producer and consumer output ---------------------------------------

# Sorted uniq keys of the ACK lines of load_producer outputs "$@".
acked_keys() {
    cat "$@" 2>/dev/null | awk '$1 == "ACK" { print $2 }' | sort
}

# stored_load_records TOPIC: from `dump commitlog --json` of the stopped store,
# one line per record of TOPIC: "<uniq key> <id> <seq> <crc ok: 1/0>" (a
# failed dump adds a line that fails every check).
stored_load_records() {
    if ! "$CTL" dump --store "$STORE" $SMALL commitlog --json >"$T/dump.json" 2>"$T/dump.err"; then
        echo "dump-failed -1 -1 0" # fails every check on the records
        sed 's/^/# dump: /' "$T/dump.err" >&2
    fi
    perl -MJSON::PP -MCompress::Zlib -MMIME::Base64 -e '
        my $topic = shift;
        while (my $l = <STDIN>) {
            my ($u, $b);
            # Fast path (JSON::PP is slow on megabytes of bodies): a load body is
            # plain ASCII without escapes, so the fields can be cut out directly.
            if ($l =~ /"topic":"([^"\\]*)"/ && $1 ne $topic) {
                next;
            }
            if ($l =~ /"body_encoding":"text"/ && $l =~ /"body":"(L1 [^"\\]*)"/) {
                $b = $1;
                $u = $l =~ /"uniq_key":"([0-9A-F]+)"/ ? $1 : undef;
            } else {
                my $j = JSON::PP->new->decode($l);
                next unless $j->{topic} eq $topic;
                $b = $j->{body_encoding} eq "base64" ? decode_base64($j->{body}) : $j->{body};
                utf8::encode($b) if utf8::is_utf8($b);
                $u = $j->{uniq_key};
            }
            my ($ok, $id, $seq) = (0, -1, -1);
            if ($b =~ /\AL1 ([0-9a-f]{8}) ((\d+) (\d+) (\d+)\|(.*))\z/s) {
                ($id, $seq) = ($3, $4);
                $ok = (hex($1) == crc32($2) && length($6) == $5) ? 1 : 0;
            }
            printf "%s %s %s %s\n", $u // "none", $id, $seq, $ok;
        }' "$1" <"$T/dump.json"
    rm -f "$T/dump.json"
}

# wait_log PATTERN FILE [TENTHS]: poll until FILE has a line matching PATTERN (grep's basic
# regular expression; bounded, 30 s by default); 0 when it did.
wait_log() {
    local lim=${3:-300} i=0
    until grep -q -e "$1" "$2" 2>/dev/null || [ $i -ge "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    grep -q -e "$1" "$2" 2>/dev/null
}

# free_port [SPAN]: a port P of 127.0.0.1 free now, with P-SPAN+1 .. P-1 free too. Picked
# below the kernel's ephemeral range (ip_local_port_range), which the source ports of
# outgoing connections come from: a port the test listens on later cannot have been taken
# by one of the store's own connections in between.
free_port() {
    perl -MIO::Socket::INET -e '
        my $span = shift // 1;
        my ($lo) = split " ", (eval { open(my $f, "<", "/proc/sys/net/ipv4/ip_local_port_range")
            and scalar <$f> } || "32768 60999");
        $lo = 32768 if $lo < 12000;
        for (1 .. 2000) {
            my $p = 10000 + $span + int(rand($lo - 10000 - $span));
            my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                LocalPort => $p - $_, ReuseAddr => 1) } 0 .. $span - 1;
            next if grep { !defined } @s;
            print "$p\n";
            exit 0;
        }
        die "no free port";
    ' "$@"
}
