#!/usr/bin/perl
# controller_client.pl: a small client of shmq-controller's port for the tests, and a
# fake broker replica.
#
#   controller_client.pl HOST:PORT JSON         one request, its answer (JSON) on stdout
#   controller_client.pl HOST:PORT --raw BYTES  send BYTES (perl string escapes allowed,
#                                               such as "\x7f\xff\xff\xff"), print the answer
#                                               or "closed"
#   controller_client.pl --heartbeat ADDRS BROKER ID OFFSET EPOCH
#       heartbeat every 200 ms to the leader among ADDRS (HOST:PORT,...), following
#       NOT_LEADER answers, until killed
#
# Exit 0 with an answer (ok or not), 1 when no answer came (refused, closed, 10 s).
use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP;

sub exchange {
    my ($addr, $bytes) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 5) or return undef;
    $s->autoflush(1);
    local $SIG{ALRM} = sub { die "timeout\n" };
    my $answer = eval {
        alarm 10;
        print $s $bytes;
        my $head = '';
        while (length($head) < 4) {
            my $r = sysread($s, $head, 4 - length($head), length($head));
            return undef unless $r;
        }
        my $len = unpack('N', $head);
        my $body = '';
        while (length($body) < $len) {
            my $r = sysread($s, $body, $len - length($body), length($body));
            return undef unless $r;
        }
        $body;
    };
    alarm 0;
    close($s);
    return $answer;
}

sub request {
    my ($addr, $json) = @_;
    return exchange($addr, pack('N', length($json)) . $json);
}

if (@ARGV >= 1 && $ARGV[0] eq '--heartbeat') {
    my (undef, $addrs, $broker, $id, $offset, $epoch) = @ARGV;
    my @addrs = split /,/, $addrs;
    my $i = 0;
    $SIG{TERM} = sub { exit 0 };
    while (1) {
        my $addr = $addrs[$i % @addrs];
        my $a = request($addr, encode_json({cmd => 'heartbeat', brokerName => $broker,
            brokerId => $id + 0, maxOffset => $offset + 0, epoch => $epoch + 0}));
        my $j = defined $a ? eval { decode_json($a) } : undef;
        $i++ if !$j || !$j->{ok};
        select(undef, undef, undef, 0.2);
    }
}

my ($addr, $what, $arg) = @ARGV;
die "usage: controller_client.pl HOST:PORT JSON | HOST:PORT --raw BYTES\n" unless defined $what;
my $answer;
if ($what eq '--raw') {
    my $bytes = eval qq{"$arg"};
    $answer = exchange($addr, $bytes);
} else {
    $answer = request($addr, $what);
}
if (!defined $answer) {
    print "closed\n";
    exit 1;
}
print "$answer\n";
exit 0;
