# Shell functions of the power-loss test (tests/crash/power_loss.t): the
# store lives on a small ext4 image mounted through a loop device; a "cut"
# freezes (SIGSTOP) every process of the store and every producer, copies
# the image file, and the copy is what a host that lost power at that instant
# would find on its disk: what the store flushed is in it, what sat only in
# the page cache of the mounted filesystem is not.  The copy is then mounted
# in place of the original and the store started on it.  The cleanup trap
# kills every process, unmounts, and detaches the loop device, also when the
# test fails half-way.
#
# Usage, after broker_init:  . "$SRC/tests/helpers/powercut.sh"; pc_init MB
# Needs root, losetup, mkfs.ext4 and working loop devices; without them the
# test prints a TAP skip plan with the reason and exits 0.

FS=""   # mount point of the image the store is on ($T/fs)
IMG=""  # the image file mounted there
LOOP="" # its loop device
PC_LOOPS="" # every loop device attached (the cleanup detaches them)
PC_FROZEN=""
PC_SHM_NAME=""

pc_cleanup() {
    local t=$T p
    for p in $PC_FROZEN $BG_PIDS $SHMQD_PID $(pc_store_pids); do
        kill -KILL "$p" 2>/dev/null
    done
    T="" # broker_cleanup stops every process; the directory goes after the unmount
    broker_cleanup
    T=$t
    pc_detach_all
    [ -n "$T" ] && rm -rf "$T"
}

pc_skip() {
    echo "1..0 # SKIP $1"
    exit 0
}

# pc_init MB: check that loop devices work here: make an MB ext4 image at
# $T/disk.img, mount it at $T/fs, make the store directory, unmount it.
pc_init() {
    local why
    FS="$T/fs"
    mkdir -p "$FS"
    trap pc_cleanup EXIT
    [ "$(id -u)" -eq 0 ] || pc_skip "needs root (loop devices and mount)"
    for b in losetup mkfs.ext4 mount umount cp; do
        command -v "$b" >/dev/null 2>&1 || pc_skip "no $b"
    done
    pc_mkimage "$T/disk.img" "$1" || pc_skip "cannot make an ext4 image: $(head -c 200 "$T/mkfs.err")"
    if ! pc_mount "$T/disk.img"; then
        why=$(tr '\n' ' ' <"$T/mount.err" | cut -c1-200)
        pc_skip "cannot mount an ext4 image through a loop device: $why"
    fi
    mkdir -p -m 700 "$STORE"
    pc_umount
}

# pc_mkimage FILE MB [BLOCK]: a fresh ext4 image (inode tables and journal
# written now, so that no kernel thread initialises them while a cut copies);
# BLOCK: its block size (mkfs.ext4 gives an image this small 1 KiB blocks).
pc_mkimage() {
    rm -f "$1"
    truncate -s "${2}M" "$1" 2>"$T/mkfs.err" &&
        mkfs.ext4 -q -F -m 0 ${3:+-b "$3"} -E lazy_itable_init=0,lazy_journal_init=0 "$1" \
            >>"$T/mkfs.err" 2>&1
}

# pc_mount FILE: attach FILE to a loop device and mount it at $FS; sets IMG, LOOP, STORE.
pc_mount() {
    [ -z "$LOOP" ] || pc_umount
    LOOP=$(losetup -f --show "$1" 2>"$T/mount.err") || {
        LOOP=""
        return 1
    }
    PC_LOOPS="$PC_LOOPS $LOOP"
    if ! mount -t ext4 "$LOOP" "$FS" 2>>"$T/mount.err"; then
        losetup -d "$LOOP" 2>/dev/null
        LOOP=""
        return 1
    fi
    IMG=$1
    STORE="$FS/store"
    return 0
}

# pc_umount: unmount $FS (a few tries: a killed process may still hold a
# file for a moment) and detach the loop device.
pc_umount() {
    local i=0
    if [ -n "$LOOP" ]; then
        while mountpoint -q "$FS" && ! umount "$FS" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        mountpoint -q "$FS" && umount -l "$FS" 2>/dev/null
        losetup -d "$LOOP" 2>/dev/null
    fi
    LOOP=""
    IMG=""
}

# pc_detach_all: (cleanup) unmount whatever is still mounted at $FS and
# detach every loop device this test attached.
pc_detach_all() {
    local i=0 d
    [ -n "$FS" ] || return 0
    while mountpoint -q "$FS" 2>/dev/null && [ $i -lt 20 ]; do
        umount "$FS" 2>/dev/null || umount -l "$FS" 2>/dev/null
        i=$((i + 1))
    done
    # Only a device still backed by a file of this test: a number detached
    # earlier may be another test's device now.
    for d in $PC_LOOPS; do
        case "$(losetup -n -O BACK-FILE "$d" 2>/dev/null)" in
        "$T"/*) losetup -d "$d" 2>/dev/null ;;
        esac
    done
    LOOP=""
}

# pc_start_broker [ARGS...]: like start_broker (shmqd in the background,
# stderr appended to $T/shmqd.log), with one status call per try; returns 0
# once the store runs with its writer, flusher and dispatcher, and sets
# PC_WROTE to the write position at that moment (the recovered end when no
# producer sends).  Bounded: 30 s.
pc_start_broker() {
    local i=0 w
    PC_WROTE=""
    "$SHMQD" --store "$STORE" $SMALL "$@" >>"$T/shmqd.log" 2>&1 &
    SHMQD_PID=$!
    while [ $i -lt 300 ]; do
        w=$(status_json | perl -MJSON::PP -e 'local $/; my $j = eval {
            JSON::PP->new->decode(<STDIN>) } or exit 1;
            my %s = map { $_->{name} => $_->{state} } @{$j->{workers}};
            exit 1 if $j->{state} ne "running" ||
                grep { ($s{$_} // "") ne "running" } qw(writer flusher dispatcher);
            print $j->{positions}{wrote}, "\n"')
        if [ -n "$w" ]; then
            PC_WROTE=$w
            return 0
        fi
        alive "$SHMQD_PID" || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# The pid of shmqd and of every process below it (its workers), from /proc.
pc_store_pids() {
    [ -n "$SHMQD_PID" ] || return 0
    perl -e '
        my %kids;
        for my $f (glob "/proc/[0-9]*/stat") {
            open(my $h, "<", $f) or next;
            my $s = <$h> // next;
            close $h;
            my ($pid) = $s =~ /^(\d+)/ or next;
            $s =~ s/^.*\)\s+//s; # after "(comm)": state ppid ...
            my (undef, $ppid) = split " ", $s;
            push @{$kids{$ppid}}, $pid;
        }
        my @todo = ($ARGV[0]); my @all;
        while (@todo) { my $p = shift @todo; push @all, $p; push @todo, @{$kids{$p} // []} }
        print join(" ", @all), "\n"' "$SHMQD_PID"
}

# Is pid $1 stopped (or gone)?
pc_stopped() {
    ! alive "$1" || grep -q '^State:[[:space:]]*T' "/proc/$1/status" 2>/dev/null
}

# pc_freeze PIDS...: SIGSTOP them, then the store's processes (the master
# first, so that it starts nobody new), and wait until every one is stopped
# (bounded, 30 s).  PC_FROZEN lists them.  Returns 1 if one did not stop.
pc_freeze() {
    local p i=0 all recheck=0
    PC_FROZEN="$*"
    if [ -n "$SHMQD_PID" ]; then
        kill -STOP "$SHMQD_PID" 2>/dev/null
    fi
    kill -STOP "$@" 2>/dev/null
    while [ $i -lt 300 ]; do
        all=1
        # The master is stopped: its children are known now.  Look again
        # once all are stopped, for a worker started just before.
        if [ $i -eq 0 ] || [ "$recheck" = 1 ]; then
            for p in $(pc_store_pids); do
                case " $PC_FROZEN " in *" $p "*) ;; *)
                    PC_FROZEN="$PC_FROZEN $p"
                    WORKER_PIDS="$WORKER_PIDS $p"
                    kill -STOP "$p" 2>/dev/null
                    all=0
                    ;;
                esac
            done
        fi
        for p in $PC_FROZEN; do
            pc_stopped "$p" || all=0
        done
        if [ $all -eq 1 ]; then
            [ "$recheck" = 1 ] && return 0
            recheck=1
            continue
        fi
        recheck=0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# pc_thaw: SIGCONT every frozen process.
pc_thaw() {
    [ -n "$PC_FROZEN" ] && kill -CONT $PC_FROZEN 2>/dev/null
    PC_FROZEN=""
}

# pc_kill_frozen: SIGKILL every frozen process and wait until all are gone
# (bounded, 30 s); reaps our children.  The store is then not running.
pc_kill_frozen() {
    local p i=0 left
    [ -n "$PC_FROZEN" ] && kill -KILL $PC_FROZEN 2>/dev/null
    while [ $i -lt 300 ]; do
        left=0
        for p in $PC_FROZEN; do
            alive "$p" && left=1
        done
        [ $left -eq 0 ] && break
        sleep 0.1
        i=$((i + 1))
    done
    for p in $PC_FROZEN; do
        wait "$p" 2>/dev/null
    done
    PC_FROZEN=""
    SHMQD_PID=""
    [ $left -eq 0 ]
}

# pc_kill_store: kill -9 the master and every worker at once (a crash of
# every store process, the host keeps running), wait until they are gone.
pc_kill_store() {
    PC_FROZEN=$(pc_store_pids)
    pc_kill_frozen
}

# pc_forget_ram: a host that lost power lost its shared memory too: remove
# the store's control block (and the consumer one) from /dev/shm.
pc_forget_ram() {
    # Every copy is mounted at the same place: the name is computed once.
    [ -n "$PC_SHM_NAME" ] || PC_SHM_NAME=$(ctl_shm_name)
    [ -n "$PC_SHM_NAME" ] && rm -f "/dev/shm/$PC_SHM_NAME" "/dev/shm/$PC_SHM_NAME.cons"
}

# pc_check STORED LIMITS DETAILS: compare the records found in the store
# (STORED: stored_load_records lines "<uniq key> <id> <seq> <crc ok>") with
# the producers' acknowledgement logs.  LIMITS has one line per producer:
#   "<log file> <id> <bytes> <must bytes> <flags>"
# where the acknowledgements that count are the "A" lines within the first
# <bytes> bytes of the log (what it held at the cut), the "must" ones those
# within <must bytes> (e.g. before a crash), and flags are letters: c (a
# producer of the current run: counted in lost_cur), p (its records must be
# a prefix of what it sent: every seq below its largest stored one is stored,
# unless the log has an error (E) for that send).  Prints one line of figures:
#   acked= lost= lost_cur= must= must_lost= dup= bad= stray= holes= unacked= notok= errors=
# and the first few lost, duplicated and missing (hole) messages in DETAILS.
pc_check() {
    perl -e '
        my ($stored, $limits, $details) = @ARGV;
        my (%cnt, %maxseq, %ids, %fig);
        $fig{$_} = 0 for qw(acked lost lost_cur must must_lost dup bad stray holes unacked notok errors);
        my @det;
        open(my $L, "<", $limits) or die "$limits: $!";
        my @logs;
        while (<$L>) {
            my ($file, $id, $bytes, $must, $flags) = split;
            push @logs, [$file, $id, $bytes, $must, $flags // ""];
            $ids{$id} = 1;
        }
        open(my $S, "<", $stored) or die "$stored: $!";
        while (<$S>) {
            my ($u, $id, $seq, $ok) = split;
            if (!defined $ok || $ok ne "1") { $fig{bad}++; push @det, "bad record: $_"; next }
            if (!$ids{$id}) { $fig{stray}++; push @det, "record of an unknown producer: $_"; next }
            $cnt{$id}{$seq}++;
            $maxseq{$id} = $seq if !defined $maxseq{$id} || $seq > $maxseq{$id};
        }
        for my $lg (@logs) {
            my ($file, $id, $bytes, $must, $flags) = @$lg;
            my (%acked, %failed);
            my $off = 0;
            if (open(my $F, "<", $file)) {
                while (my $l = <$F>) {
                    my $end = $off + length($l);
                    $off = $end;
                    next unless $l =~ /\n\z/;
                    my ($k, $lid, $seq) = split " ", $l;
                    next unless defined $seq && $lid == $id;
                    if ($k eq "E" || $k eq "F") {
                        # An error may mean "not stored" (F is stored, not flushed in time);
                        # the whole log counts: an answer logged after the cut still explains a hole.
                        $failed{$seq} = 1 if $k eq "E";
                        if ($end <= $bytes) { $fig{$k eq "E" ? "errors" : "notok"}++ }
                        next;
                    }
                    next unless $k eq "A" && $end <= $bytes;
                    $acked{$seq} = 1;
                    $fig{acked}++;
                    my $n = $cnt{$id}{$seq} // 0;
                    if ($end <= $must) {
                        $fig{must}++;
                        if ($n == 0) { $fig{must_lost}++ }
                    }
                    if ($n == 0) {
                        $fig{lost}++;
                        $fig{lost_cur}++ if $flags =~ /c/;
                        push @det, "lost: producer $id seq $seq (acknowledged)";
                    }
                }
            }
            for my $seq (keys %{$cnt{$id} // {}}) {
                $fig{unacked}++ unless $acked{$seq};
                if ($cnt{$id}{$seq} > 1) {
                    $fig{dup} += $cnt{$id}{$seq} - 1;
                    push @det, "stored $cnt{$id}{$seq} times: producer $id seq $seq";
                }
            }
            if ($flags =~ /p/ && defined $maxseq{$id}) {
                for my $seq (0 .. $maxseq{$id}) {
                    next if $cnt{$id}{$seq} || $failed{$seq};
                    $fig{holes}++;
                    push @det, "hole: producer $id seq $seq missing below stored seq $maxseq{$id}";
                }
            }
        }
        open(my $D, ">", $details) or die "$details: $!";
        for my $re (qr/^(bad|record)/, qr/^lost/, qr/^stored/, qr/^hole/) {
            my @d = grep { $_ =~ $re } @det;
            print $D "$_\n" for @d[0 .. ($#d < 4 ? $#d : 4)];
        }
        close $D;
        print join(" ", map { "$_=$fig{$_}" } qw(acked lost lost_cur must must_lost dup bad stray
            holes unacked notok errors)), "\n";
    ' "$1" "$2" "$3"
}

# fig NAME FIGURES: one figure out of pc_check's line.
fig() {
    echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
