#!/usr/bin/perl
# Corruption campaign: damage one store file at a time and check that the
# damage never reaches a user unnoticed.
#
# A reference store is built once (shmqd running: topics of 4, 6 and 3
# queues, messages with keys and tags over three CommitLog segments, delay
# levels and timed messages both delivered and pending, so that the delay
# and timer files hold state; consumer groups with committed offsets and a
# retry topic; then clean stops), with a snapshot taken half-way for "stale"
# copies.  An undamaged copy is read twice with the checking consumer
# (tests/helpers/store_content.c): what it prints is the expected content,
# and the second read proves the comparison stable.
#
# Each trial copies the reference, applies ONE damage with a seeded random
# generator to one file of one kind:
#   flip   one bit of a random byte;
#   zero   a 512-byte aligned sector zeroed (a file under 512 bytes: all of it);
#   stale  an older version of a region: a 512- or 4096-byte aligned block
#          from the half-way snapshot, or from another place of the same
#          file (a JSON file: its whole half-way version, or its .bak);
# three times in four in bytes that hold data, once anywhere in the file.
# Then `shmqctl verify`, a start of shmqd (bounded), the checking consumer
# (every message of every queue, from each queue's min to its max, CRC
# checks on; every key and UNIQ_KEY queried; committed offsets, topics,
# scheduler counters), a clean stop, and the outcome, the first that
# applies:
#   wrong      a message delivered (or returned by a query) that is not the
#              one stored at that place, or a pending delayed message
#              delivered before its time;
#   crash      verify or a worker killed by a signal, a sanitizer report, a
#              start or a stop that does not end;
#   silent     something differs from the reference (a message missing, a
#              committed offset or a pending count moved, a topic changed,
#              a query missing a message, a message delivered twice) and
#              nothing said so: no verify problem, no refused start, no new
#              warning or repair line in shmqd's log, no consumer error;
#   verify     `shmqctl verify` reported a problem (exit 1);
#   refused    shmqd did not start (the log says whether the file was named);
#   repaired   shmqd started, with a warning, error or repair line the
#              undamaged store does not log;
#   consumer   a pull failed (SHMQ_E_CORRUPT): that message was not delivered;
#   harmless   none of the above: nothing differs.
# wrong, crash and silent fail the campaign.
#
# Usage (SHMQ_BUILD: the build directory; SHMQ_SRC: the source tree):
#   corruption.pl [--per-kind N] [--seed S] [--kinds k1,k2] [--figures FILE]
#                 [--trial N] [--reference DIR] [--save-reference DIR]
#                 [--work DIR] [--keep] [--verbose] [--todo-known]
# --per-kind N trials of each kind (default 200); trial t damages kind
# t % 12, with damage type (t / 12) % 3 and its own generator seeded from
# a hash of S and t, so `--seed S --trial N` replays one trial (exactly on the same
# reference: --save-reference keeps the one built, --reference reuses it).
# TAP output: one test per kind; figures as comments, and as a Markdown
# table with --figures.  With --todo-known (the short run of `make test`), a
# kind whose failed trials all match an open issue listed in @KNOWN below is
# reported "not ok ... # TODO <issue>" (TAP: it does not fail the run, and
# prove says when it starts to pass); the trials are printed all the same.  A failed trial is kept under the work directory
# (named in the output) with the damaged store, verify's output, shmqd's
# log and what the consumer read.
use strict;
use warnings;
use Cwd qw(abs_path);
use Digest::MD5 qw(md5);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use Getopt::Long;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

my $SRC = $ENV{SHMQ_SRC} // abs_path(dirname(__FILE__) . "/../..");
my $BUILD = $ENV{SHMQ_BUILD} // "$SRC/build";
my $CTL = "$BUILD/shmqctl";
my $SHMQD = "$BUILD/shmqd";
my $CONTENT = "$BUILD/tests/helpers/store_content";
my $PRODUCER = "$BUILD/tests/helpers/ref_producer";

my %opt = (per_kind => 200, seed => 1, verbose => 0, keep => 0, todo_known => 0);
GetOptions(
    "per-kind=i" => \$opt{per_kind},
    "seed=i" => \$opt{seed},
    "kinds=s" => \$opt{kinds},
    "figures=s" => \$opt{figures},
    "trial=i" => \$opt{trial},
    "reference=s" => \$opt{reference},
    "save-reference=s" => \$opt{save_reference},
    "work=s" => \$opt{work},
    "keep" => \$opt{keep},
    "verbose" => \$opt{verbose},
    "todo-known" => \$opt{todo_known},
) or die "usage: see the top of $0\n";
$opt{verbose} = 1 if defined $opt{trial};
$| = 1;

# Kinds in trial order (trial t damages $KINDS[t % @KINDS]).
my @KINDS = qw(commitlog-old commitlog-new consumequeue index checkpoint topics.json
    consumerOffset.json subscriptionGroup.json delayOffset.json timerwheel timerlog timercheck);
my @TYPES = qw(flip zero stale);

# Open issues the campaign found that are not fixed yet: a failed trial whose every wrong
# difference matches one of them counts as that issue (--todo-known).  Each entry: a name,
# what is wrong, a matcher of one "wrong" difference.  Remove an entry once its fix is in.
# None today (queries and the scheduler check CRCs as consumers do, and the checkpoint's
# record-CRC marker makes a record without __CRC32# damage wherever shmq wrote it).
my @KNOWN = ();

# The open issues a failed trial's wrong differences all match (empty: not a known one).
sub known_issues {
    my ($o) = @_;
    return () if $o->{outcome} ne "wrong" || @{$o->{crash}};
    my %hit;
    for my $d (grep { $_->[0] eq "wrong" } @{$o->{diffs}}) {
        my ($k) = grep { $_->[2]->($d->[1]) } @KNOWN;
        return () unless $k;
        $hit{$k->[0]} = 1;
    }
    return sort keys %hit;
}
my %JSON_KIND = map { $_ => 1 } qw(topics.json consumerOffset.json subscriptionGroup.json
    delayOffset.json);
my %SYSTEM_TOPIC = map { $_ => 1 } qw(SCHEDULE_TOPIC_XXXX rmq_sys_wheel_timer);

# The broker's configuration for every program: small files, so that every kind of file
# rolls; delay level 5 (2 days) and timed messages 2 days ahead stay pending while the
# reference is built.  Every run of a copy (the expected content and each trial) has its
# wall clock moved to 3 days after the reference was finished (tests/fault/clock_shift.c):
# they all fall due at its start.  Nothing expires meanwhile (fileReservedTime).
my $CONF = <<'CONF';
mappedFileSizeCommitLog=1048576
mappedFileSizeConsumeQueue=6000
maxMessageSize=65536
maxHashSlotNum=1024
maxIndexNum=2048
messageDelayLevel=1s 2s 1s 2s 2d
fileReservedTime=876000
mappedFileSizeTimerLog=4096
flushDelayOffsetInterval=1000
CONF
my $PENDING_TIMER_MS = 2 * 86400 * 1000;
my $SHIFT_TO_MS = 3 * 86400 * 1000; # a run's clock: this long after the reference's end
my $SHIM = "$BUILD/tests/fault/libclock_shift.so";
my $WAIT_MS = 30000; # one bounded wait (start, settle, stop)

# ---- TAP --------------------------------------------------------------------------------

my ($tap_n, $tap_failed) = (0, 0);
sub ok {
    my ($pass, $name) = @_;
    $tap_n++;
    print(($pass ? "ok" : "not ok") . " $tap_n - $name\n");
    $tap_failed++ unless $pass;
    return $pass;
}
sub diag { print map { "# $_\n" } map { split /\n/ } @_ }
sub bail { print "Bail out! @_\n"; exit 1 }

for my $b ($CTL, $SHMQD, $CONTENT, $PRODUCER, $SHIM, "$BUILD/shmq-scheduler", "$BUILD/shmq-indexer") {
    bail("$b not built") unless -x $b;
}

# ---- processes: every one started is tracked and stopped at exit --------------------------

my %live;       # pid => name
my $work;
my $keep_work = $opt{keep};
my %child_env;  # environment of the store's processes (the clock shim)
my @stores;     # store roots whose control block may be left behind

sub ctl_shm_name {
    my ($root) = @_;
    my $p = abs_path($root) // return undef;
    require Math::BigInt;
    my $h = Math::BigInt->from_hex("cbf29ce484222325");
    my $m = Math::BigInt->new(2)->bpow(64);
    for my $c (unpack("C*", $p)) {
        $h->bxor($c);
        $h->bmul("1099511628211");
        $h->bmod($m);
    }
    (my $x = $h->as_hex) =~ s/^0x//;
    return sprintf("shmq-%016s", $x) =~ tr/ /0/r;
}

sub cleanup {
    for my $pid (keys %live) {
        kill "KILL", $pid;
        waitpid($pid, 0);
    }
    %live = ();
    for my $root (@stores) {
        next unless -d $root;
        if (my $n = ctl_shm_name($root)) {
            unlink "/dev/shm/$n", "/dev/shm/$n.cons";
        }
    }
    if ($work && -d $work && !$keep_work) {
        remove_tree($work);
    }
}
END { my $rc = $?; cleanup(); $? = $rc }
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

# Run a command with stdout and stderr to $out (appended when $append), killed after
# $timeout s.  Returns (exit status as from wait, timed out).
sub run_to {
    my ($timeout, $out, $append, @cmd) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, $append ? ">>" : ">", $out) or die "$out: $!";
        open(STDERR, ">&STDOUT") or die;
        open(STDIN, "<", "/dev/null");
        @ENV{keys %child_env} = values %child_env;
        exec(@cmd) or die "exec $cmd[0]: $!";
    }
    $live{$pid} = basename($cmd[0]);
    my $end = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            delete $live{$pid};
            return ($?, 0);
        }
        if (time > $end) {
            kill "KILL", $pid;
            waitpid($pid, 0);
            delete $live{$pid};
            return ($?, 1);
        }
        sleep 0.02;
    }
}

sub slurp {
    my ($f) = @_;
    open(my $h, "<", $f) or return undef;
    binmode $h;
    local $/;
    my $d = <$h>;
    return $d;
}
sub spew {
    my ($f, $d) = @_;
    open(my $h, ">", $f) or die "$f: $!";
    binmode $h;
    print $h $d;
    close $h or die "$f: $!";
}
# Write $d over $f in place (same inode, same size).
sub overwrite {
    my ($f, $d) = @_;
    open(my $h, "+<", $f) or die "$f: $!";
    binmode $h;
    print $h $d;
    close $h or die "$f: $!";
}

# ---- the broker -------------------------------------------------------------------------------

my $conf_file;

sub shmqd_start {
    my ($root, $log) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, ">>", $log) or die "$log: $!";
        open(STDERR, ">&STDOUT") or die;
        open(STDIN, "<", "/dev/null");
        @ENV{keys %child_env} = values %child_env;
        exec($SHMQD, "-c", $conf_file, "--store", $root) or die "exec: $!";
    }
    $live{$pid} = "shmqd";
    return $pid;
}

# SIGTERM, wait (bounded); returns (exit status, timed out).
sub shmqd_stop {
    my ($pid) = @_;
    kill "TERM", $pid;
    return shmqd_wait($pid, $WAIT_MS / 1000 * 2);
}

sub shmqd_wait {
    my ($pid, $secs) = @_;
    my $end = time + $secs;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r == -1) {
            delete $live{$pid};
            return ($?, 0);
        }
        if (time > $end) {
            kill "KILL", $pid;
            waitpid($pid, 0);
            delete $live{$pid};
            return ($?, 1);
        }
        sleep 0.02;
    }
}

sub status_json {
    my ($root) = @_;
    my $j = `"$CTL" status -c "$conf_file" --store "$root" --json 2>/dev/null`;
    return eval { JSON::PP->new->decode($j) };
}

# Poll status until $cond->(status) holds (bounded); returns the last status or undef.
sub wait_status {
    my ($root, $secs, $cond) = @_;
    my $end = time + $secs;
    while (time < $end) {
        my $s = status_json($root);
        return $s if $s && $cond->($s);
        sleep 0.2;
    }
    return undef;
}

sub ctl {
    my ($log, @args) = @_;
    my ($st) = run_to(120, $log, 1, $CTL, $args[0], "-c", $conf_file, @args[1 .. $#args]);
    return $st == 0;
}

# ---- the reference store ---------------------------------------------------------------------

# subscriptionGroup.json as RocketMQ writes it (shmq only reads it).
sub write_groups {
    my ($root) = @_;
    my $groups = join(",\n", map {
        my ($g, $max) = @$_;
        "\t\t\"$g\":{\n\t\t\t\"brokerId\":0,\n\t\t\t\"consumeBroadcastEnable\":true,\n"
            . "\t\t\t\"consumeEnable\":true,\n\t\t\t\"consumeFromMinEnable\":true,\n"
            . "\t\t\t\"consumeMessageOrderly\":false,\n\t\t\t\"groupName\":\"$g\",\n"
            . "\t\t\t\"retryMaxTimes\":$max,\n\t\t\t\"retryQueueNums\":1,\n"
            . "\t\t\t\"whichBrokerWhenConsumeSlowly\":1\n\t\t}"
    } ["G1", 16], ["G2", 5], ["G3", 3]);
    my $doc = "{\n\t\"dataVersion\":{\n\t\t\"counter\":3,\n\t\t\"stateVersion\":0,\n"
        . "\t\t\"timestamp\":1700000000000\n\t},\n\t\"forbiddenTable\":{},\n"
        . "\t\"subscriptionGroupTable\":{\n$groups\n\t}\n}\n";
    make_path("$root/config");
    spew("$root/config/subscriptionGroup.json", $doc);
    spew("$root/config/subscriptionGroup.json.bak", $doc);
}

my @acks; # "topic queue qoff phys uniq" of every message the producer sent

sub produce {
    my ($root, $log, %a) = @_;
    my @cmd = ($PRODUCER, "--store", $root, "--topic", $a{topic}, "--first", $a{first},
        "--count", $a{count});
    push @cmd, "--delay-level", $a{level} if $a{level};
    push @cmd, "--deliver-after", $a{after} if $a{after};
    my $out = "$log.produce";
    my ($st) = run_to(300, $out, 0, @cmd);
    my $d = slurp($out) // "";
    open(my $l, ">>", $log) or die;
    print $l $d;
    close $l;
    push @acks, map { /^ACK (\S+ \d+ \d+ \d+ \S+)/ ? $1 : () } split /\n/, $d;
    return $st == 0;
}

sub build_reference {
    my ($dir) = @_;
    my $root = "$dir/ref";
    my $log = "$dir/build.log";
    push @stores, $root;
    write_groups($root);
    my $ok = 1;
    my $step = sub {
        my ($what, $pass) = @_;
        return if $pass;
        diag("building the reference store: $what failed; log: $log");
        diag(`tail -n 30 "$log"`);
        $ok = 0;
    };
    my $running = sub { my $s = shift; ($s->{state} // "") eq "running"
        && !grep { $_->{state} ne "running" && $_->{name} ne "ha-sender" } @{$s->{workers}} };
    my $sched = sub {
        my ($d, $t) = @_;
        wait_status($root, 120, sub { $_[0]->{scheduler}{delay_delivered} >= $d
            && $_[0]->{scheduler}{timer_delivered} >= $t });
    };
    my $grp = sub { my ($g, $topic, $count, @more) = @_;
        ctl($log, "consume", "--store", $root, $topic, "--group", $g, "--count", $count,
            "--timeout", "20000", @more) };

    # Run 1: topics, messages, delayed and timed messages, groups.
    my $pid = shmqd_start($root, $log);
    $step->("first start", wait_status($root, 60, $running));
    for ([TopicA => 4], [TopicB => 6], [TopicC => 3]) {
        $step->("topic $_->[0]", ctl($log, "topic", "--store", $root, "create", $_->[0],
            "--queues", $_->[1]));
    }
    $step->("phase 1 sends",
        produce($root, $log, topic => "TopicA", first => 0, count => 700)
        && produce($root, $log, topic => "TopicB", first => 0, count => 450)
        && produce($root, $log, topic => "TopicA", first => 10000, count => 20, level => 1)
        && produce($root, $log, topic => "TopicB", first => 10000, count => 15, level => 5)
        && produce($root, $log, topic => "TopicC", first => 0, count => 40, after => 1500)
        && produce($root, $log, topic => "TopicC", first => 40, count => 40,
            after => $PENDING_TIMER_MS)
        && produce($root, $log, topic => "TopicC", first => 80, count => 60));
    $step->("phase 1 deliveries", $sched->(20, 40));
    $step->("phase 1 consumers", $grp->("G1", "TopicA", 250) && $grp->("G2", "TopicB", 3, "--fail")
        && $grp->("G2", "TopicB", 150) && $grp->("G3", "TopicC", 30));
    $step->("retries", $sched->(23, 40));
    my ($st) = shmqd_stop($pid);
    $step->("first stop", $st == 0);
    system("cp", "-a", "--sparse=always", $root, "$dir/snap1") == 0 or $step->("snapshot", 0);

    # Run 2: more of everything; the log rolls into its third segment.
    $pid = shmqd_start($root, $log);
    $step->("second start", wait_status($root, 60, $running));
    $step->("phase 2 sends",
        produce($root, $log, topic => "TopicA", first => 700, count => 900)
        && produce($root, $log, topic => "TopicB", first => 450, count => 600)
        && produce($root, $log, topic => "TopicA", first => 10020, count => 10, level => 1)
        && produce($root, $log, topic => "TopicB", first => 10015, count => 10, level => 5)
        && produce($root, $log, topic => "TopicC", first => 140, count => 30, after => 1500)
        && produce($root, $log, topic => "TopicC", first => 170, count => 30,
            after => $PENDING_TIMER_MS)
        && produce($root, $log, topic => "TopicC", first => 200, count => 60));
    $step->("phase 2 deliveries", $sched->(10, 30));
    $step->("phase 2 consumers", $grp->("G1", "TopicA", 600) && $grp->("G2", "TopicB", 400)
        && $grp->("G3", "TopicC", 40));
    ($st) = shmqd_stop($pid);
    $step->("second stop", $st == 0);
    # Run 3: nothing new; every file is saved once more.
    $pid = shmqd_start($root, $log);
    $step->("third start", wait_status($root, 60, $running));
    ($st) = shmqd_stop($pid);
    $step->("third stop", $st == 0);
    spew("$dir/acks", join("\n", @acks) . "\n");
    spew("$dir/ref_time", int(time * 1000) . "\n");
    return $ok;
}

# ---- files and damage ------------------------------------------------------------------------

# Files of each kind, relative to the store root.
sub kind_files {
    my ($root, $kind) = @_;
    my @cl = sort map { "commitlog/" . basename($_) } glob("$root/commitlog/*");
    return @cl[0 .. $#cl - 1] if $kind eq "commitlog-old";
    return ($cl[-1]) if $kind eq "commitlog-new";
    return sort map { substr($_, length($root) + 1) } glob("$root/consumequeue/*/*/*")
        if $kind eq "consumequeue";
    return sort map { "index/" . basename($_) } glob("$root/index/*") if $kind eq "index";
    return ("checkpoint") if $kind eq "checkpoint";
    return ("config/$kind") if $JSON_KIND{$kind};
    return ("timerwheel") if $kind eq "timerwheel";
    return sort map { "timerlog/" . basename($_) } glob("$root/timerlog/*") if $kind eq "timerlog";
    return ("config/timercheck") if $kind eq "timercheck";
    die "unknown kind $kind";
}

# Sectors (512 bytes) of a file that hold a non-zero byte, each with the span of its
# non-zero bytes: [[sector, first, last], ...].
my %live_cache;
sub live_sectors {
    my ($path, $d) = @_;
    return $live_cache{$path} if $live_cache{$path};
    my @l;
    my $len = length $d;
    for (my $b = 0; $b < $len; $b += 4096) {
        my $blk = substr($d, $b, 4096);
        next unless $blk =~ /[^\0]/;
        for (my $s = 0; $s < length $blk; $s += 512) {
            my $sec = substr($blk, $s, 512);
            next unless $sec =~ /[^\0]/;
            $sec =~ /^\0*/;
            my $first = $+[0];
            $sec =~ /\0*\z/;
            my $last = $-[0] - 1;
            push @l, [($b + $s) / 512, $b + $s + $first, $b + $s + $last];
        }
    }
    return $live_cache{$path} = \@l;
}

sub rint { int(rand($_[0])) }

# Choose and describe one damage of $kind; returns a hash (file, type, offset, len, ...)
# and the damaged content.  Re-drawn until it changes at least one byte.
sub draw_damage {
    my ($ref, $snap, $kind, $type) = @_;
    my @files = kind_files($ref, $kind);
    die "no $kind file in the reference store\n" unless @files;
    for my $try (1 .. 50) {
        my $rel = $files[rint(scalar @files)];
        my $orig = slurp("$ref/$rel");
        my $len = length $orig;
        my $live = live_sectors("$ref/$rel", $orig);
        my $anywhere = rint(4) == 0 || !@$live;
        my %dm = (kind => $kind, file => $rel, type => $type, where => $anywhere ? "any" : "data");
        my $d = $orig;
        if ($type eq "flip") {
            my $byte;
            if ($anywhere) {
                $byte = rint($len);
            } else {
                my $s = $live->[rint(scalar @$live)];
                $byte = $s->[1] + rint($s->[2] - $s->[1] + 1);
            }
            my $bit = rint(8);
            substr($d, $byte, 1) = chr(ord(substr($d, $byte, 1)) ^ (1 << $bit));
            @dm{qw(offset len bit)} = ($byte, 1, $bit);
        } elsif ($type eq "zero") {
            my $sec = $anywhere ? rint(int(($len + 511) / 512)) : $live->[rint(scalar @$live)][0];
            my $off = $sec * 512;
            my $n = $len - $off < 512 ? $len - $off : 512;
            substr($d, $off, $n) = "\0" x $n;
            @dm{qw(offset len)} = ($off, $n);
        } else {
            my $older = -f "$snap/$rel" ? slurp("$snap/$rel") : undef;
            if ($JSON_KIND{$kind}) {
                my $bak = slurp("$ref/$rel.bak");
                my @src;
                push @src, ["snapshot", $older] if defined $older && $older ne $orig;
                push @src, [".bak", $bak] if defined $bak && $bak ne $orig;
                if (@src && rint(4) != 0) {
                    my $s = $src[rint(scalar @src)];
                    $d = $s->[1];
                    @dm{qw(offset len source)} = (0, length $d, "the whole file from the $s->[0]");
                } else {
                    # A range of the file copied over another place of it.
                    my $n = 1 + rint($len < 64 ? $len : 64);
                    my ($from, $to) = (rint($len - $n + 1), rint($len - $n + 1));
                    substr($d, $to, $n) = substr($orig, $from, $n);
                    @dm{qw(offset len source)} = ($to, $n, "offset $from of the same file");
                }
            } else {
                my $bs = rint(2) ? 4096 : 512;
                $bs = 512 if $len < 2 * 4096;
                my $nblk = int(($len + $bs - 1) / $bs);
                my $blk = $anywhere ? rint($nblk) : int($live->[rint(scalar @$live)][0] * 512 / $bs);
                my $off = $blk * $bs;
                my $n = $len - $off < $bs ? $len - $off : $bs;
                my $src;
                if (defined $older && length($older) >= $off + $n
                    && substr($older, $off, $n) ne substr($orig, $off, $n) && rint(2) == 0) {
                    substr($d, $off, $n) = substr($older, $off, $n);
                    $src = "the same place in the half-way snapshot";
                } elsif ($nblk > 1) {
                    my @cand = grep { $_ != $blk } map { int($_->[0] * 512 / $bs) } @$live;
                    my $from = @cand ? $cand[rint(scalar @cand)] : ($blk + 1 + rint($nblk - 1)) % $nblk;
                    my $m = $len - $from * $bs < $n ? $len - $from * $bs : $n;
                    substr($d, $off, $m) = substr($orig, $from * $bs, $m);
                    $n = $m;
                    $src = "offset " . ($from * $bs) . " of the same file";
                } else {
                    next;
                }
                @dm{qw(offset len source)} = ($off, $n, $src);
            }
            if (length($d) != $len) {
                # A whole older JSON file: the file takes its size.
                $dm{resize} = 1;
            }
        }
        next if $d eq $orig;
        return (\%dm, $d);
    }
    die "no damage of type $type changes a $kind file\n";
}

sub damage_text {
    my ($dm) = @_;
    my $t = "$dm->{type} $dm->{file} offset $dm->{offset}";
    $t .= " bit $dm->{bit}" if $dm->{type} eq "flip";
    $t .= " ($dm->{len} bytes)" if $dm->{type} eq "zero";
    $t .= " ($dm->{len} bytes from $dm->{source})" if $dm->{type} eq "stale";
    $t .= " [$dm->{where}]";
    return $t;
}

# ---- reading the outcome ----------------------------------------------------------------------

# The checking consumer's lines, by kind.  Messages stored before the reference was
# finished ("old") are keyed by their place (topic, queue, queue offset); the ones the
# scheduler delivers at the start of a run ("new": due once the clock is moved ahead) by
# topic, queue and UNIQ_KEY, with the fields that do not depend on when and where
# they were written.
my ($T_CUT, $LOG_END); # store time between old and new; the reference log's end
sub parse_content {
    my ($text) = @_;
    my %c = (M => {}, N => {}, X => {}, O => {}, T => {}, Q => {}, K => {}, W => {}, P => []);
    for my $l (split /\n/, $text // "") {
        my @f = split / /, $l;
        my $k = shift @f // next;
        if ($k eq "M") {
            # topic queue qoff | phys size bodyfnv bodylen propsfnv uniq keys tags reconsume
            # store_ts born_ts flag sysflag
            my ($topic, $q, $qoff, @v) = @f;
            if ($T_CUT && $v[9] >= $T_CUT) {
                push @{$c{N}{"$topic $q $v[5]"}}, "@v[1, 2, 3, 5, 6, 7, 8, 11, 12]";
                $c{new_phys}{$v[0]} = 1;
            } else {
                $c{M}{"$topic $q $qoff"} = "@v";
                $c{uniq}{$v[5]}{$topic} = 1;
                $c{phys}{$v[0]} = $v[0] + $v[1];
            }
        } elsif ($k eq "X") {
            $c{X}{"$f[0] $f[1] $f[2]"} = join(" ", @f[3 .. $#f]);
        } elsif ($k eq "O") {
            $c{O}{"$f[0] $f[1] $f[2]"} = $f[3];
        } elsif ($k eq "T") {
            $c{T}{$f[0]} = "@f[1 .. $#f]";
        } elsif ($k eq "Q") {
            $c{Q}{"$f[0] $f[1]"} = "@f[2 .. $#f]";
        } elsif ($k eq "K" || $k eq "U") {
            $c{K}{"$k $f[0] $f[1]"} = $f[2] eq "error" ? "error $f[3]" : ($f[3] // "");
        } elsif ($k eq "W") {
            $c{W}{$f[0]} = [@f[1 .. 3]];
        } elsif ($k eq "S") {
            $c{S} = [@f];
        } elsif ($k eq "P") {
            push @{$c{P}}, "@f";
        } elsif ($k eq "STATE") {
            $c{state} = $f[0];
        } elsif ($k eq "QUIET") {
            $c{quiet_timeout} = 1;
        } elsif ($k eq "END") {
            $c{end} = 1;
        }
    }
    $_ = [sort @$_] for values %{$c{N}};
    return \%c;
}

# Query results "phys:bodyfnv:propsfnv,...": those in the reference's log by place, the
# others (copies written at the start) as a sorted list of bodies.
sub split_results {
    my ($r) = @_;
    my (%old, @new);
    for (grep { length } split /,/, $r) {
        my ($p, $b, $pr) = split /:/;
        if ($p < $LOG_END) {
            $old{$p} = "$b:$pr";
        } else {
            push @new, $b;
        }
    }
    return (\%old, [sort @new]);
}

# Differences between the reference content $e and what a damaged store gave, $a:
# a list of [class, text], class one of wrong, loss, dup, changed.
sub compare {
    my ($e, $a) = @_;
    my @d;
    my $add = sub { push @d, [@_] };
    for my $k (sort keys %{$e->{M}}) {
        my $got = $a->{M}{$k};
        if (!defined $got) {
            $add->("loss", "message $k missing") unless $a->{X}{$k};
        } elsif ($got ne $e->{M}{$k}) {
            $add->("wrong", "message $k differs: got [$got] want [$e->{M}{$k}]");
        }
    }
    for my $k (sort keys %{$a->{M}}) {
        $add->("wrong", "message $k was never stored: [$a->{M}{$k}]") unless exists $e->{M}{$k};
    }
    # Deliveries made at the start.
    my %uniq_new;
    for my $k (keys %{$e->{N}}) {
        my ($topic, $q, $u) = split / /, $k;
        $uniq_new{$u} = "$topic/$q";
    }
    for my $k (sort keys %{$e->{N}}) {
        my ($want, $got) = ($e->{N}{$k}, $a->{N}{$k} // []);
        my %w = map { $_ => 1 } @$want;
        if (my @bad = grep { !$w{$_} } @$got) {
            $add->("wrong", "delivery $k differs: got [$bad[0]] want [$want->[0]]");
        } elsif (@$got > @$want) {
            $add->("dup", "delivery $k made " . scalar(@$got) . " times, want " . scalar(@$want));
        } elsif (@$got < @$want) {
            $add->("loss", "delivery $k made " . scalar(@$got) . " times, want " . scalar(@$want));
        }
    }
    for my $k (sort keys %{$a->{N}}) {
        next if exists $e->{N}{$k};
        my ($topic, $q, $u) = split / /, $k;
        if ($uniq_new{$u}) {
            $add->("wrong", "delivery of $u to $topic/$q, want $uniq_new{$u}");
        } elsif ($e->{uniq}{$u} && grep { !$SYSTEM_TOPIC{$_} } keys %{$e->{uniq}{$u}}) {
            $add->("dup", "delivery $k: a message delivered before is delivered again");
        } else {
            $add->("wrong", "delivery $k: no such message was due [$a->{N}{$k}[0]]");
        }
    }
    for my $k (sort keys %{$e->{O}}) {
        my ($w, $g) = ($e->{O}{$k}, $a->{O}{$k});
        if (!defined $g) {
            $add->("loss", "committed offset $k ($w) gone");
        } elsif ($g > $w) {
            $add->("loss", "committed offset $k moved up from $w to $g (messages skipped)");
        } elsif ($g < $w) {
            $add->("dup", "committed offset $k moved down from $w to $g (messages again)");
        }
    }
    for my $k (sort keys %{$a->{O}}) {
        $add->("changed", "committed offset $k ($a->{O}{$k}) appeared")
            unless exists $e->{O}{$k};
    }
    for my $t (sort keys %{$e->{T}}) {
        my $g = $a->{T}{$t};
        $add->("loss", "topic $t gone") unless defined $g;
        $add->("changed", "topic $t: $e->{T}{$t} became $g") if defined $g && $g ne $e->{T}{$t};
    }
    for my $t (sort keys %{$a->{T}}) {
        $add->("changed", "topic $t appeared ($a->{T}{$t})") unless exists $e->{T}{$t};
    }
    my ($es, $as) = ($e->{S} // [], $a->{S} // []);
    if (@$as) {
        for my $i (0, 1) {
            my $what = $i ? "timed messages pending" : "delayed messages pending";
            next if $as->[$i] == $es->[$i];
            $add->($as->[$i] > $es->[$i] ? "loss" : "dup", "$what: $as->[$i], want $es->[$i]");
        }
    }
    for my $k (sort keys %{$e->{K}}) {
        my $g = $a->{K}{$k} // "none";
        next if $g eq $e->{K}{$k};
        if ($g =~ /^(error|none)/) {
            $add->("loss", "query $k failed: $g");
            next;
        }
        my ($wo, $wn) = split_results($e->{K}{$k});
        my ($go, $gn) = split_results($g);
        for my $p (sort keys %$wo) {
            if (!$go->{$p}) {
                $add->("loss", "query $k misses the message at $p");
            } elsif ($go->{$p} ne $wo->{$p}) {
                $add->("wrong", "query $k returns a different message at $p: $go->{$p}");
            }
        }
        for my $p (sort keys %$go) {
            $add->("wrong", "query $k returns the message at $p, which does not have that key")
                unless $wo->{$p};
        }
        next if "@$gn" eq "@$wn";
        # A copy written at the start may have the body of one due then, or of one of the
        # old results (a message delivered again).
        my %w = map { $_ => 1 } @$wn, map { (split /:/)[0] } values %$wo;
        if (grep { !$w{$_} } @$gn) {
            $add->("wrong", "query $k returns copies written at the start with other bodies");
        } else {
            $add->(@$gn > @$wn ? "dup" : "loss", "query $k returns " . scalar(@$gn)
                . " copies written at the start, want " . scalar(@$wn));
        }
    }
    return \@d;
}

# Log lines that say something the undamaged store does not say: a warning or an
# error, or an INFO line reporting a repair.  Normalised (the store's path as ROOT, numbers
# as N) so that runs compare.
sub norm_line {
    my ($l, $root) = @_;
    $l =~ s/^\S+ \S+ (\w+)\s+(\w[\w-]*)\[\d+\]: /$1 $2: / or return undef;
    $l =~ s/\Q$root\E/ROOT/g;
    $l =~ s/\d+/N/g;
    return $l;
}
sub log_signals {
    my ($log, $baseline, $root) = @_;
    my (@sig, @crash);
    for my $l (split /\n/, slurp($log) // "") {
        push @crash, $l if $l =~ /killed by signal|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
        my $n = norm_line($l, $root) // next;
        # A daemon's own count of what it repaired (the line itself is logged at every start).
        if ($n =~ /^INFO / && $l =~ /\b([1-9]\d*) (bytes truncated|units rebuilt|units dropped|units found after the checkpoint|slots repaired|half-written entries undone|entries removed)/) {
            push @sig, $l;
            next;
        }
        next if $baseline->{$n};
        if ($n =~ /^(WARN|ERROR) /) {
            push @sig, $l;
        } elsif ($n =~ /damaged|corrupt|repair|rebuil|dropped|truncat|refus|cannot|mismatch|invalid/) {
            push @sig, $l;
        }
    }
    return (\@sig, \@crash);
}

# ---- a trial ------------------------------------------------------------------------------

my ($ref, $snap, $expected, $baseline, $keys_file, $t_ref);

# Start, read and stop a store at $root; results in $dir (verify.out, shmqd.log, content).
sub run_store {
    my ($root, $dir) = @_;
    my %r;
    push @stores, $root;
    my $log = "$dir/shmqd.log";
    %child_env = (LD_PRELOAD => $SHIM,
        SHMQ_CLOCK_SHIFT_MS => int($t_ref + $SHIFT_TO_MS - time * 1000));
    my $pid = shmqd_start($root, $log);
    my ($st, $to) = run_to($WAIT_MS / 1000 * 3, "$dir/content", 0, $CONTENT, "--store", $root,
        "--pid", $pid, "--wait-ms", $WAIT_MS, "--keys", $keys_file);
    $r{content_status} = $st;
    $r{content_timeout} = $to;
    %child_env = ();
    my $c = parse_content(slurp("$dir/content"));
    $r{content} = $c;
    if (($c->{state} // "") eq "running") {
        my ($xs, $xto) = shmqd_stop($pid);
        $r{stop_status} = $xs;
        $r{stop_hang} = $xto;
    } else {
        my ($xs, $xto) = shmqd_wait($pid, $WAIT_MS / 1000);
        $r{exit_status} = $xs;
        $r{start_hang} = $xto || ($c->{state} // "") eq "timeout";
        $r{refused} = !$xto && $xs != 0;
    }
    return \%r;
}

# A path of the damaged file as a log line may name it.
sub names_file {
    my ($lines, $root, $rel) = @_;
    my @pat = ($rel);
    push @pat, "$1/$2" if $rel =~ m{^consumequeue/([^/]+)/(\d+)/};
    for my $l (@$lines) {
        return 1 if grep { index($l, $_) >= 0 } @pat;
    }
    return 0;
}

sub trial {
    my ($t) = @_;
    my $kind = $KINDS[$t % @KINDS];
    my $type = $TYPES[int($t / @KINDS) % @TYPES];
    # Seeds of nearby trials must not give nearby first draws (drand48 would): hash them.
    srand(unpack("N", md5("shmq corruption $opt{seed} $t")));
    rand() for 1 .. 4;
    my ($dm, $d) = draw_damage($ref, $snap, $kind, $type);
    my $dir = "$work/trial";
    remove_tree($dir);
    make_path($dir);
    my $root = "$dir/store";
    system("cp", "-a", "--sparse=always", $ref, $root) == 0 or die "cannot copy the reference\n";
    if ($dm->{resize}) {
        spew("$root/$dm->{file}", $d);
    } else {
        overwrite("$root/$dm->{file}", $d);
    }
    my %o = (trial => $t, kind => $kind, damage => $dm, dir => $dir);
    # verify
    my ($vs, $vto) = run_to(120, "$dir/verify.out", 0, $CTL, "verify", "-c", $conf_file,
        "--store", $root);
    my $vout = slurp("$dir/verify.out") // "";
    $o{verify} = !$vto && ($vs >> 8) == 1 && $vout =~ /^problem: /m;
    $o{verify_names} = $o{verify} && index($vout, $dm->{file}) >= 0;
    my @crash;
    push @crash, "verify did not end in 120 s" if $vto;
    push @crash, "verify exited with status " . ($vs >> 8) . " signal " . ($vs & 127)
        if !$vto && ($vs & 127 || ($vs >> 8) > 1);
    push @crash, "verify: sanitizer report" if $vout =~ /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
    # the broker and the consumer
    my $r = run_store($root, $dir);
    my ($sig, $lcrash) = log_signals("$dir/shmqd.log", $baseline, $root);
    push @crash, @$lcrash;
    push @crash, "the start did not end" if $r->{start_hang};
    push @crash, "the stop did not end" if $r->{stop_hang};
    push @crash, "store_content exited with status " . ($r->{content_status} >> 8)
        . " signal " . ($r->{content_status} & 127)
        if $r->{content_status} & 127 || ($r->{content_status} >> 8) == 1 || $r->{content_timeout};
    my $c = $r->{content};
    push @crash, "store_content: sanitizer report"
        if (slurp("$dir/content") // "") =~ /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
    for my $w (sort keys %{$c->{W}}) {
        push @crash, "worker $w last exit $c->{W}{$w}[2]" if $c->{W}{$w}[2] < 0;
    }
    my $diffs = [];
    my $running = ($c->{state} // "") eq "running";
    if ($running) {
        $diffs = compare($expected, $c);
        push @crash, "the consumer's output is incomplete" unless $c->{end};
    }
    $o{refused} = $r->{refused};
    $o{refused_names} = $r->{refused} && names_file($sig, $root, $dm->{file});
    $o{log} = @$sig > 0;
    $o{log_names} = names_file($sig, $root, $dm->{file});
    $o{consumer} = keys(%{$c->{X}}) > 0;
    $o{stop_unclean} = $running && !$r->{stop_hang} && $r->{stop_status} != 0;
    $o{diffs} = $diffs;
    $o{sig_lines} = $sig;
    $o{crash} = \@crash;
    my %cls = map { $_->[0] => 1 } @$diffs;
    my $signalled = $o{verify} || $o{refused} || $o{log} || $o{consumer};
    $o{outcome} = $cls{wrong} ? "wrong"
        : @crash ? "crash"
        : (($cls{loss} || $cls{dup} || $cls{changed}) && !$signalled) ? "silent"
        : $o{verify} ? "verify"
        : $o{refused} ? "refused"
        : $o{log} ? "repaired"
        : $o{consumer} ? "consumer"
        : "harmless";
    $o{differs} = @$diffs > 0;
    return \%o;
}

sub report_trial {
    my ($o, $fh) = @_;
    my @s;
    push @s, "verify" . ($o->{verify_names} ? "" : "(other file)") if $o->{verify};
    push @s, "refused" . ($o->{refused_names} ? "" : "(file not named)") if $o->{refused};
    push @s, "log" . ($o->{log_names} ? "" : "(file not named)") if $o->{log};
    push @s, "consumer" if $o->{consumer};
    my $line = sprintf("trial %d %s: %s -> %s; signals: %s; %d differences", $o->{trial},
        $o->{kind}, damage_text($o->{damage}), $o->{outcome}, @s ? join(",", @s) : "none",
        scalar @{$o->{diffs}});
    print $fh "$line\n";
    my $detail = $o->{outcome} =~ /^(wrong|crash|silent)$/ || $opt{verbose};
    if ($detail) {
        my @l;
        push @l, "  crash: $_" for @{$o->{crash}};
        my $i = 0;
        for (@{$o->{diffs}}) {
            last if ++$i > 12;
            push @l, "  $_->[0]: $_->[1]";
        }
        push @l, "  ... " . (@{$o->{diffs}} - 12) . " more differences" if @{$o->{diffs}} > 12;
        push @l, "  log: $_" for @{$o->{sig_lines}}[0 .. ($#{$o->{sig_lines}} < 5 ? $#{$o->{sig_lines}} : 5)];
        print $fh "$_\n" for @l;
    }
    return $line;
}

# ---- main -----------------------------------------------------------------------------------

$work = $opt{work} // tempdir("/tmp/shmq-corruption.XXXXXX");
make_path($work);
$work = abs_path($work);
my $refdir = $opt{reference} ? abs_path($opt{reference}) : $work;
$conf_file = "$refdir/broker.conf";
my $t0 = time;
if (!$opt{reference}) {
    spew($conf_file, $CONF);
    ok(build_reference($work), "reference store built (log in three CommitLog segments, "
        . "delayed and timed messages, groups)") or bail("no reference store");
    if ($opt{save_reference}) {
        make_path($opt{save_reference});
        system("cp", "-a", "--sparse=always", "$work/ref", "$work/snap1", "$work/broker.conf",
            "$work/acks", "$work/ref_time", $opt{save_reference}) == 0 or bail("cannot save the reference");
        diag("reference saved in $opt{save_reference}");
    }
} else {
    bail("$refdir holds no reference store (ref/, snap1/, broker.conf)")
        unless -d "$refdir/ref" && -d "$refdir/snap1" && -f $conf_file;
}
($ref, $snap) = ("$refdir/ref", "$refdir/snap1");
$t_ref = (slurp("$refdir/ref_time") // bail("no $refdir/ref_time")) + 0;
$T_CUT = $t_ref + 86400 * 1000;
my %nfiles = map { my @f = kind_files($ref, $_); ($_ => scalar @f) } @KINDS;
ok(!grep({ !$nfiles{$_} } @KINDS) && $nfiles{"commitlog-old"} >= 2 && $nfiles{index} >= 2,
    "the reference has every kind of file (" . ($nfiles{"commitlog-old"} + 1)
    . " CommitLog segments, $nfiles{index} index files, $nfiles{consumequeue} ConsumeQueue "
    . "files, $nfiles{timerlog} timer log files)")
    or bail("the reference store lacks a kind of file: "
        . join(", ", map { "$_ $nfiles{$_}" } @KINDS));
{
    my ($vs) = run_to(120, "$work/verify.ref", 0, $CTL, "verify", "-c", $conf_file, "--store", $ref);
    ok($vs == 0, "verify passes on the reference store") or diag(slurp("$work/verify.ref"));
}

# The expected content: an undamaged copy, read twice.
{
    my @runs;
    for my $i (1, 2) {
        my $dir = "$work/baseline$i";
        remove_tree($dir);
        make_path($dir);
        system("cp", "-a", "--sparse=always", $ref, "$dir/store") == 0 or bail("cannot copy");
        if ($i == 1) {
            # Every key and UNIQ_KEY of the reference's messages is queried.
            $keys_file = "$work/keys";
            spew($keys_file, "");
        }
        my $r = run_store("$dir/store", $dir);
        push @runs, [$dir, $r];
        if ($i == 1) {
            my (%k, %u);
            for my $mk (keys %{$r->{content}{M}}) {
                my ($topic) = split / /, $mk;
                my @f = split / /, $r->{content}{M}{$mk};
                $u{"U $topic $f[5]"} = 1 if $f[5] ne "-";
                if ($f[6] ne "-") {
                    $k{"K $topic $_"} = 1 for split /\\x20/, $f[6];
                }
            }
            spew($keys_file, join("\n", sort(keys %k), sort(keys %u)) . "\n");
            # Read again with the queries (the first read had no keys to ask).
            remove_tree("$dir/store");
            system("cp", "-a", "--sparse=always", $ref, "$dir/store") == 0 or bail("cannot copy");
            unlink "$dir/shmqd.log";
            $runs[0][1] = run_store("$dir/store", $dir);
        }
    }
    my ($e, $e2) = map { $_->[1]{content} } @runs;
    $expected = $e;
    $LOG_END = 0;
    for (values %{$e->{phys}}) {
        $LOG_END = $_ if $_ > $LOG_END;
    }
    my $nn = 0;
    $nn += @$_ for values %{$e->{N}};
    my %base;
    for my $run (@runs) {
        for (split /\n/, slurp("$run->[0]/shmqd.log") // "") {
            my $n = norm_line($_, "$run->[0]/store");
            $base{$n} = 1 if defined $n;
        }
    }
    $baseline = \%base;
    my $nm = keys %{$e->{M}};
    my $nk = keys %{$e->{K}};
    ok(($e->{state} // "") eq "running" && $e->{end} && !$e->{quiet_timeout} && $nm > 3000
        && $nn == 95 && !keys %{$e->{X}} && $runs[0][1]{stop_status} == 0,
        "an undamaged copy starts, settles, delivers $nm stored messages and the $nn that fall "
        . "due, answers $nk queries and stops")
        or diag(`tail -n 20 "$runs[0][0]/shmqd.log"`, `grep -v '^[MKU] ' "$runs[0][0]/content" | head -40`);
    # What the producer was told is what the consumer reads.
    my %acked = map { my @f = split / /; ("$f[0] $f[1] $f[2]" => "$f[3] $f[4]") }
        split /\n/, slurp("$refdir/acks") // "";
    my @bad = grep {
        my $m = $e->{M}{$_};
        my @f = $m ? split(/ /, $m) : ();
        !$m || "$f[0] $f[5]" ne $acked{$_}
    } sort keys %acked;
    ok(keys(%acked) > 2900 && !@bad, scalar(keys %acked) . " acknowledged messages are read "
        . "where the producer was told") or diag("not read as acknowledged: @bad[0 .. ($#bad < 9 ? $#bad : 9)]");
    my $d = compare($e, $e2);
    my ($sig) = log_signals("$runs[1][0]/shmqd.log", $baseline, "$runs[1][0]/store");
    ok(!@$d && !keys %{$e2->{X}}, "a second undamaged copy gives the same content")
        or diag(map { "$_->[0]: $_->[1]" } @$d[0 .. ($#$d < 9 ? $#$d : 9)]);
    bail("the comparison is not stable") if @$d;
}
diag(sprintf("reference and baseline ready in %.0f s", time - $t0));

# The trials.
my %want_kind = map { $_ => 1 } $opt{kinds} ? split(/,/, $opt{kinds}) : @KINDS;
for my $k (keys %want_kind) {
    bail("unknown kind $k (kinds: @KINDS)") unless grep { $_ eq $k } @KINDS;
}
my @trials = defined $opt{trial} ? ($opt{trial})
    : grep { $want_kind{$KINDS[$_ % @KINDS]} } 0 .. $opt{per_kind} * @KINDS - 1;
my @COLS = qw(verify refused repaired consumer harmless wrong silent crash);
my (%fig, %fails, %extra);
open(my $tlog, ">", "$work/trials.log") or die;
$tlog->autoflush(1);
my $t1 = time;
for my $t (@trials) {
    my $o = eval { trial($t) };
    if (!$o) {
        my $err = $@ || "unknown error";
        $o = {trial => $t, kind => $KINDS[$t % @KINDS], outcome => "crash",
            damage => {type => "?", file => "?", offset => "?", where => "?"},
            diffs => [], crash => ["the trial itself failed: $err"], sig_lines => []};
    }
    my $kind = $o->{kind};
    $fig{$kind}{trials}++;
    $fig{$kind}{$o->{outcome}}++;
    $extra{$kind}{verify_any}++ if $o->{verify};
    $extra{$kind}{differs}++ if $o->{differs} && $o->{outcome} !~ /^(wrong|silent|crash)$/;
    # Only verify noticed, and what users get differs: the broker itself said nothing.
    $extra{$kind}{verify_only}++ if $o->{differs} && $o->{outcome} eq "verify"
        && !$o->{refused} && !$o->{log} && !$o->{consumer};
    $extra{$kind}{refused_unnamed}++ if $o->{refused} && !$o->{refused_names};
    my $line = report_trial($o, $tlog);
    if ($o->{outcome} =~ /^(wrong|silent|crash)$/) {
        my $keep = "$work/fail-$t";
        rename($o->{dir}, $keep) if $o->{dir} && -d $o->{dir};
        push @{$fails{$kind}}, [$o, $keep];
    }
    if ($opt{verbose}) {
        open(my $fh, ">", \my $buf);
        report_trial($o, $fh);
        close $fh;
        diag($buf);
    }
}
my $secs = time - $t1;
close $tlog;

# Figures and results.
my @lines = ("| kind | trials | detected by verify | refused at start | repaired (log line) | "
        . "consumer error | harmless | wrong | silent loss | crash or hang |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for my $kind (grep { $fig{$_} } @KINDS) {
    my $f = $fig{$kind};
    push @lines, "| $kind | " . join(" | ", $f->{trials}, map { $f->{$_} // 0 } @COLS) . " |";
}
diag(sprintf("%d trials in %.0f s (%.2f s a trial); seed %d", scalar @trials, $secs,
    @trials ? $secs / @trials : 0, $opt{seed}));
diag(@lines);
for my $kind (grep { $fig{$_} } @KINDS) {
    my $x = $extra{$kind};
    diag("$kind: verify reported " . ($x->{verify_any} // 0) . " of $fig{$kind}{trials}; "
        . ($x->{differs} // 0) . " signalled trials with differences ("
        . ($x->{verify_only} // 0) . " of them noticed by verify alone); "
        . ($x->{refused_unnamed} // 0) . " refusals not naming the file");
}
if ($opt{figures}) {
    spew($opt{figures}, join("\n", @lines) . "\n");
}
for my $kind (grep { $fig{$_} } @KINDS) {
    my $f = $fig{$kind};
    my $bad = ($f->{wrong} // 0) + ($f->{silent} // 0) + ($f->{crash} // 0);
    my %todo;
    if ($bad && $opt{todo_known}) {
        for (@{$fails{$kind}}) {
            my @k = known_issues($_->[0]);
            if (!@k) {
                %todo = ();
                last;
            }
            $todo{$_} = 1 for @k;
        }
    }
    my $name = "$kind: $f->{trials} trials, no wrong message, no silent loss, no crash";
    if (%todo) {
        $tap_n++;
        print "not ok $tap_n - $name # TODO open issue(s): " . join(", ", sort keys %todo) . "\n";
        diag(map { "$_->[0]: $_->[1]" } grep { $todo{$_->[0]} } @KNOWN);
    }
    my $pass = %todo ? 0 : ok(!$bad, $name);
    $keep_work = 1 unless $pass || %todo; # a real failure: keep what shows it
    $pass or do {
            for (@{$fails{$kind}}) {
                my ($o, $keep) = @$_;
                open(my $fh, ">", \my $buf);
                report_trial($o, $fh);
                close $fh;
                diag($buf);
                diag("  replay: SHMQ_BUILD=$BUILD perl $0 --seed $opt{seed} --trial $o->{trial} "
                    . "--reference $refdir; kept in $keep");
            }
        };
}
diag("work directory kept: $work") if $keep_work;
print "1..$tap_n\n";
exit($tap_failed ? 1 : 0);
