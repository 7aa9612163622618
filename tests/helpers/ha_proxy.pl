#!/usr/bin/perl
# ha_proxy.pl LISTEN_PORT TARGET_PORT CONTROL_DIR: a TCP proxy between an HA
# slave and its master on 127.0.0.1 that a test steers with files in
# CONTROL_DIR:
#   cut     close every connection now (the file is removed; a test that
#           needs a sure cut kills the proxy and starts another);
#   flip N  on the next connection, flip one bit of the byte at offset N of
#           the master -> slave stream (the file is removed when it is used;
#           a connection that closes before byte N hands the flip on, so that
#           it is made: to the open connection that carried the most, N bytes
#           past what it carried, else to the next one: a slave's short
#           metadata requests must not keep it from its stream);
#   tap     while it exists, append the master -> slave stream to tap.bin
#           (what an eavesdropper on the link sees);
#   delay MS  while it exists, hold what arrives (either way) MS milliseconds
#           before passing it on, in order (a slow link);
#   block   while it exists, close every connection and accept-and-close new
#           ones (a partition: nothing passes either way until it is removed).
# It logs what it does to stdout, one line each.  Runs until killed.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

my ($lport, $tport, $dir) = @ARGV;
die "usage: ha_proxy.pl LISTEN_PORT TARGET_PORT CONTROL_DIR\n" unless defined $dir;
$| = 1;
$SIG{PIPE} = 'IGNORE'; # a peer gone: syswrite fails and the pair is closed
my $l = IO::Socket::INET->new(Listen => 8, LocalAddr => '127.0.0.1', LocalPort => $lport,
    ReuseAddr => 1) or die "listen: $!";
my $sel = IO::Select->new($l);
my %peer;       # socket -> its other end
my %down;       # master-side socket -> bytes forwarded to the slave so far
my %flip_at;    # master-side socket -> offset to flip
my %flip_n;     # master-side socket -> the N its flip was asked with (logged)
my $carry_flip; # a flip whose connection closed before its offset: the next connection's
my @held;       # [due time, from-socket, bytes] waiting for the delay, in arrival order

# Pass bytes from $s to its peer; a failure closes the pair.
sub pass {
    my ($s, $buf) = @_;
    my $o = $peer{$s} or return;
    my ($off, $n) = (0, length $buf);
    while ($off < $n) {
        my $w = syswrite($o, $buf, $n - $off, $off);
        if (!defined $w) {
            $sel->remove($s, $o);
            close $s;
            close $o;
            delete @peer{$s, $o};
            return;
        }
        $off += $w;
    }
}

sub delay_ms {
    open(my $f, '<', "$dir/delay") or return 0;
    my $ms = <$f> // 0;
    close $f;
    chomp $ms;
    return $ms =~ /^\d+$/ ? $ms : 0;
}

while (1) {
    while (@held && $held[0][0] <= time) {
        my $h = shift @held;
        pass($h->[1], $h->[2]);
    }
    if (-e "$dir/cut") {
        unlink "$dir/cut";
        for my $s (keys %peer) {
            $sel->remove($peer{$s});
            close $peer{$s};
        }
        %peer = (); %down = (); %flip_at = (); %flip_n = ();
        print "cut\n";
    }
    my $blocked = -e "$dir/block";
    if ($blocked && %peer) {
        for my $s (keys %peer) {
            $sel->remove($peer{$s});
            close $peer{$s};
        }
        %peer = (); %down = (); %flip_at = (); %flip_n = (); @held = ();
        print "blocked\n";
    }
    my $wait = 0.05;
    if (@held) {
        my $due = $held[0][0] - time;
        $wait = $due < 0 ? 0 : ($due < $wait ? $due : $wait);
    }
    for my $s ($sel->can_read($wait)) {
        if ($s == $l) {
            my $c = $l->accept or next;
            if ($blocked) {
                close $c;
                print "refused (blocked)\n";
                next;
            }
            my $m = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tport") or do { close $c; next };
            $sel->add($c, $m);
            $peer{$c} = $m;
            $peer{$m} = $c;
            $down{$m} = 0;
            if (defined $carry_flip) {
                $flip_at{$m} = $flip_n{$m} = $carry_flip;
                print "connection; flipping byte $carry_flip (carried)\n";
                undef $carry_flip;
            } elsif (open(my $f, '<', "$dir/flip")) {
                my $n = <$f>;
                close $f;
                unlink "$dir/flip";
                chomp $n;
                $flip_at{$m} = $flip_n{$m} = $n;
                print "connection; flipping byte $n\n";
            } else {
                print "connection\n";
            }
            next;
        }
        my $o = $peer{$s} or next;
        my $buf;
        my $n = sysread($s, $buf, 65536);
        if (!$n) {
            my $pending;
            for my $x ($s, $o) { # a flip not made yet
                if (exists $flip_at{$x}) {
                    delete $flip_at{$x};
                    $pending = delete $flip_n{$x};
                }
            }
            $sel->remove($s, $o);
            close $s;
            close $o;
            delete @peer{$s, $o};
            delete @down{$s, $o};
            if (defined $pending) {
                my ($busiest) = sort { $down{$b} <=> $down{$a} } grep { !exists $flip_at{$_} } keys %down;
                if (defined $busiest) {
                    $flip_at{$busiest} = $down{$busiest} + $pending;
                    $flip_n{$busiest} = $pending;
                    print "flip of byte $pending handed to an open connection\n";
                } else {
                    $carry_flip = $pending;
                }
            }
            next;
        }
        if (exists $down{$s}) {
            my $at = $flip_at{$s};
            if (defined $at && $at >= $down{$s} && $at < $down{$s} + $n) {
                my $i = $at - $down{$s};
                substr($buf, $i, 1) = chr(ord(substr($buf, $i, 1)) ^ 0x10);
                delete $flip_at{$s};
                print "flipped byte ", delete $flip_n{$s}, "\n";
            }
            $down{$s} += $n;
            if (-e "$dir/tap" && open(my $t, '>>', "$dir/tap.bin")) {
                binmode $t;
                print $t $buf;
                close $t;
            }
        }
        my $ms = delay_ms();
        if ($ms > 0 || @held) { # in order: behind what is held already
            push @held, [time + $ms / 1000, $s, $buf];
        } else {
            pass($s, $buf);
        }
    }
}
