#!/usr/bin/perl
# A small RocketMQ remoting client for tests/integration/gateway.t: hostile
# frames against shmq-gateway, and a send benchmark.
#
#   remoting_client.pl hostile PORT TOPIC
#       prints one line per check: NAME and what came back (the answer's
#       code and opaque, "closed", or "none")
#   remoting_client.pl requests PORT TOPIC
#       the requests a RocketMQ client library makes that the ali-ons test does
#       not (batch sends, queries, offsets, queue locks, cluster info): one line
#       per request, NAME CODE and what the answer held
#   remoting_client.pl perms PORT READONLY WRITEONLY
#       a send to the read-only topic and a pull of the write-only one:
#       "send-readonly CODE OPAQUE", "pull-writeonly CODE OPAQUE",
#       "route-readonly CODE OPAQUE PERM"
#   remoting_client.pl garbage PORT TOPIC COUNT SEED
#       COUNT requests of the served codes (and others) with random header
#       fields and bodies, answers read as they come; reconnects when closed;
#       prints "garbage SENT ANSWERED RECONNECTS"
#   remoting_client.pl held PORT TOPIC GROUP WRITER_PID
#       with the store's writer stopped (SIGSTOP to WRITER_PID): a batch on
#       one connection and a send-back on another are held while a third
#       connection's route query and pull are answered; then SIGCONT.  Prints
#       "held-early BATCH SENDBACK" (what came within 1 s of stopping),
#       "route CODE", "pull CODE", "batch CODE IDS", "sendback CODE" and
#       "order ..." (the answers' names in the order they arrived)
#   remoting_client.pl route PORT TOPIC
#       (controller_route.t) the route of TOPIC and the cluster info:
#       "route CODE NAME ID=ADDR,..." and "cluster CODE NAME ID=ADDR,..." (the
#       brokerAddrs of the broker set NAME, by brokerId); then one send:
#       "send CODE REMARK"
#   remoting_client.pl bench PORT TOPIC CONNS COUNT SIZE
#       CONNS processes each send COUNT messages of SIZE bytes
#       (SEND_MESSAGE_V2, one at a time); prints "bench SENT SECONDS"
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);

my $json = JSON::PP->new->canonical;

sub frame {
    my ($hdr, $body) = @_;
    $body //= '';
    return pack('NN', 4 + length($hdr) + length($body), length($hdr)) . $hdr . $body;
}

sub request {
    my ($code, $opaque, $ext, $body) = @_;
    my %h = (code => $code, language => 'JAVA', version => 317, opaque => $opaque, flag => 0);
    $h{extFields} = $ext if $ext;
    return frame($json->encode(\%h), $body);
}

sub connect_to {
    my ($port) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
      || die "connect: $!";
}

# Read exactly n bytes within the deadline; undef on EOF, '' on timeout.
sub read_n {
    my ($s, $n, $deadline) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    while (length($buf) < $n) {
        my $left = $deadline - time;
        return '' if $left <= 0 || !$sel->can_read($left);
        my $r = sysread($s, $buf, $n - length($buf), length($buf));
        return undef if !$r;
    }
    return $buf;
}

# One answer: "CODE OPAQUE" (and the header hash), "closed" or "none" (timeout).
sub answer {
    my ($s, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    my $pre = read_n($s, 8, $deadline);
    return ('closed') if !defined $pre;
    return ('none') if $pre eq '';
    my ($len, $word) = unpack('NN', $pre);
    my $rest = read_n($s, $len - 4, $deadline);
    return ('closed') if !defined $rest;
    return ('none') if $rest eq '' && $len > 4;
    my $hlen = $word & 0xffffff;
    my $h = $json->decode(substr($rest, 0, $hlen));
    return ("$h->{code} $h->{opaque}", $h, substr($rest, $hlen));
}

sub hostile {
    my ($port, $topic) = @_;
    my $a = connect_to($port);
    print $a request(9999, 7);
    my ($r) = answer($a);
    print "unknown-code $r\n";
    print $a request(105, 8, {topic => $topic});
    my ($r2, $h, $body) = answer($a);
    my $route = $body ? eval { $json->decode($body) } : undef;
    my $addr = $route ? $route->{brokerDatas}[0]{brokerAddrs}{0} // '-' : '-';
    my $qn = $route ? $route->{queueDatas}[0]{readQueueNums} // '-' : '-';
    print "route $r2 $addr $qn\n";
    print $a frame('{"code":105,"opaque":9,', '');
    ($r) = answer($a);
    print "broken-json $r\n";
    print $a frame('{"opaque":10,"flag":0}', '');
    ($r) = answer($a);
    print "no-code $r\n";
    print $a request(105, 11, {});
    ($r) = answer($a);
    print "no-topic $r\n";
    print $a request(11, 12, {consumerGroup => 'G', topic => $topic, queueId => 'x'});
    ($r) = answer($a);
    print "bad-queue-id $r\n";
    print $a request(105, 13, {topic => $topic});
    ($r) = answer($a);
    print "still-usable $r\n";

    # Slow clients: one stops inside a prefix, one inside a frame; another is served.
    my $slow1 = connect_to($port);
    print $slow1 substr(request(105, 1, {topic => $topic}), 0, 6);
    my $slow2 = connect_to($port);
    print $slow2 substr(request(105, 1, {topic => $topic}), 0, 20);
    my $b = connect_to($port);
    print $b request(105, 14, {topic => $topic});
    ($r) = answer($b);
    print "beside-slow $r\n";
    print $a request(105, 15, {topic => $topic});
    ($r) = answer($a);
    print "first-beside-slow $r\n";

    # A 2 GB length: the connection is closed; the others go on.
    my $huge = connect_to($port);
    print $huge pack('NN', 0x7fffffff, 16) . '{"code":10,"opaq';
    ($r) = answer($huge, 30);
    print "2gb-length $r\n";
    # A header longer than its frame.
    my $liar = connect_to($port);
    print $liar pack('NN', 10, 4000) . 'abcdef';
    ($r) = answer($liar, 30);
    print "header-past-frame $r\n";
    print $b request(105, 16, {topic => $topic});
    ($r) = answer($b);
    print "after-bad-frames $r\n";
    # A one-way request is not answered; the next one is.
    my %h = (code => 9999, opaque => 17, flag => 2);
    print $b frame($json->encode(\%h));
    print $b request(105, 18, {topic => $topic});
    ($r) = answer($b);
    print "after-oneway $r\n";
    close($_) for ($slow1, $slow2, $a, $b, $huge, $liar);
}

# The records of a pull or query answer: (topic, body, key) of each (V1, IPv4 hosts).
sub records {
    my ($b) = @_;
    my @r;
    my $pos = 0;
    while ($pos + 92 <= length($b)) {
        my $total = unpack('N', substr($b, $pos, 4));
        my $blen = unpack('N', substr($b, $pos + 84, 4));
        my $body = substr($b, $pos + 88, $blen);
        my $tlen = unpack('C', substr($b, $pos + 88 + $blen, 1));
        my $topic = substr($b, $pos + 89 + $blen, $tlen);
        my $plen = unpack('n', substr($b, $pos + 89 + $blen + $tlen, 2));
        my $props = substr($b, $pos + 91 + $blen + $tlen, $plen);
        my ($key) = $props =~ /KEYS\x01([^\x02]*)/;
        push @r, [$topic, $body, $key // '-', unpack('N', substr($b, $pos + 36, 4))];
        $pos += $total;
    }
    return @r;
}

sub requests {
    my ($port, $topic) = @_;
    my $s = connect_to($port);
    my $o = 100;
    # a batch of three, RocketMQ's MessageDecoder.encodeMessages layout
    my $batch = '';
    for my $i (0 .. 2) {
        my $props = "KEYS\x01bk-$i\x02TAGS\x01TagB\x02";
        my $body = "batch-$i";
        $batch .= pack('NNNNN', 22 + length($body) + length($props), 0, 0, 0, length($body))
          . $body . pack('n', length($props)) . $props;
    }
    print $s request(320, ++$o, {a => 'PG', b => $topic, c => 'TBW102', d => '4', e => '1',
        f => '0', g => int(time * 1000), h => '0', i => '', j => '0', k => 'false', m => 'true'},
        $batch);
    my ($r, $h) = answer($s);
    my @ids = split /,/, ($h->{extFields}{msgId} // '');
    print "batch $r ", scalar(@ids), " $h->{extFields}{queueId}\n";
    # the index and the consume queue follow the CommitLog: wait (bounded) until they hold the
    # batch, as a client retries
    my ($body, @rec);
    for (1 .. 100) {
        print $s request(12, ++$o, {topic => $topic, key => 'bk-1', maxNum => '32',
            beginTimestamp => '0', endTimestamp => '' . int(time * 1000 + 60000)});
        ($r, $h, $body) = answer($s);
        @rec = records($body // '');
        last if @rec;
        select(undef, undef, undef, 0.1);
    }
    for (1 .. 100) {
        print $s request(30, ++$o, {topic => $topic, queueId => '1'});
        my ($r0, $h0) = answer($s);
        last if ($h0->{extFields}{offset} // 0) >= 4;
        select(undef, undef, undef, 0.1);
    }
    print "query $r ", scalar(@rec), " ", join(',', map { "$_->[1]/$_->[2]" } @rec), "\n";
    my $phys = @ids ? hex(substr($ids[2], 16)) : 0;
    print $s request(33, ++$o, {offset => "$phys"});
    ($r, $h, $body) = answer($s);
    @rec = records($body // '');
    print "view $r ", join(',', map { "$_->[0]/$_->[1]" } @rec), "\n";
    print $s request(30, ++$o, {topic => $topic, queueId => '1'});
    ($r, $h) = answer($s);
    my $max = $h->{extFields}{offset} // '-';
    print "max-offset $r $max\n";
    print $s request(31, ++$o, {topic => $topic, queueId => '1'});
    ($r, $h) = answer($s);
    print "min-offset $r ", $h->{extFields}{offset} // '-', "\n";
    print $s request(29, ++$o, {topic => $topic, queueId => '1', timestamp => '0'});
    ($r, $h) = answer($s);
    print "offset-by-time $r ", $h->{extFields}{offset} // '-', "\n";
    print $s request(11, ++$o, {consumerGroup => 'RG', topic => $topic, queueId => '1',
        queueOffset => '0', maxMsgNums => '32', sysFlag => '0', commitOffset => '0',
        suspendTimeoutMillis => '1000', subscription => 'TagB', subVersion => '0'});
    ($r, $h, $body) = answer($s);
    @rec = records($body // '');
    print "pull-tagb $r ", scalar(@rec), " next=", $h->{extFields}{nextBeginOffset} // '-',
      " max=", $h->{extFields}{maxOffset} // '-', "\n";
    print $s request(11, ++$o, {consumerGroup => 'RG', topic => $topic, queueId => '1',
        queueOffset => '' . ($max + 5), maxMsgNums => '32', sysFlag => '0', commitOffset => '0',
        suspendTimeoutMillis => '1000', subscription => '*', subVersion => '0'});
    ($r, $h) = answer($s);
    print "pull-past-max $r ", $h->{extFields}{nextBeginOffset} // '-', "\n";
    my $t0 = time;
    print $s request(11, ++$o, {consumerGroup => 'RG', topic => $topic, queueId => '1',
        queueOffset => "$max", maxMsgNums => '32', sysFlag => '2', commitOffset => '0',
        suspendTimeoutMillis => '1500', subscription => '*', subVersion => '0'});
    ($r, $h) = answer($s);
    printf "pull-held %s %d\n", $r, (time - $t0) * 1000;
    print $s request(15, ++$o, {consumerGroup => 'RG', topic => $topic, queueId => '1',
        commitOffset => '2'});
    ($r) = answer($s);
    print "update-offset $r\n";
    print $s request(14, ++$o, {consumerGroup => 'RG', topic => $topic, queueId => '1'});
    ($r, $h) = answer($s);
    print "query-offset $r ", $h->{extFields}{offset} // '-', "\n";
    my $hb = $json->encode({clientID => '127.0.0.1@rc', producerDataSet => [],
        consumerDataSet => [{groupName => 'RG', consumeType => 'CONSUME_PASSIVELY',
        messageModel => 'CLUSTERING', consumeFromWhere => 'CONSUME_FROM_LAST_OFFSET',
        subscriptionDataSet => [], unitMode => JSON::PP::false}]});
    print $s request(34, ++$o, undef, $hb);
    ($r) = answer($s);
    print "heartbeat $r\n";
    print $s request(38, ++$o, {consumerGroup => 'RG'});
    ($r, $h, $body) = answer($s);
    my $list = eval { $json->decode($body) } || {};
    print "consumer-list $r ", join(',', @{$list->{consumerIdList} // []}), "\n";
    my $mq = $json->encode({consumerGroup => 'RG', clientId => '127.0.0.1@rc',
        mqSet => [{topic => $topic, brokerName => 'broker-a', queueId => 1}]});
    print $s request(41, ++$o, undef, $mq);
    ($r, $h, $body) = answer($s);
    my $locked = eval { $json->decode($body) } || {};
    print "lock $r ", scalar(@{$locked->{lockOKMQSet} // []}), "\n";
    my $other = connect_to($port);
    my $mq2 = $json->encode({consumerGroup => 'RG', clientId => '127.0.0.1@other',
        mqSet => [{topic => $topic, brokerName => 'broker-a', queueId => 1}]});
    print $other request(41, ++$o, undef, $mq2);
    ($r, $h, $body) = answer($other);
    $locked = eval { $json->decode($body) } || {};
    print "lock-held-by-other $r ", scalar(@{$locked->{lockOKMQSet} // []}), "\n";
    print $s request(42, ++$o, undef, $mq);
    ($r) = answer($s);
    print "unlock $r\n";
    print $other request(41, ++$o, undef, $mq2);
    ($r, $h, $body) = answer($other);
    $locked = eval { $json->decode($body) } || {};
    print "lock-after-unlock $r ", scalar(@{$locked->{lockOKMQSet} // []}), "\n";
    print $s request(35, ++$o, {clientID => '127.0.0.1@rc', consumerGroup => 'RG'});
    ($r) = answer($s);
    print "unregister $r\n";
    print $s request(38, ++$o, {consumerGroup => 'RG'});
    ($r) = answer($s);
    print "consumer-list-after $r\n";
    print $s request(10, ++$o, {producerGroup => 'PG', topic => $topic, defaultTopic => 'TBW102',
        defaultTopicQueueNums => '4', queueId => '0', sysFlag => '0', bornTimestamp => '0',
        flag => '7', properties => "KEYS\x01v1-0\x02TAGS\x01TagV\x02", reconsumeTimes => '0',
        unitMode => 'false'}, 'sent with SEND_MESSAGE');
    ($r, $h) = answer($s);
    print "send-v1 $r $h->{extFields}{queueId} ", ($h->{extFields}{msgId} // '') =~ /^[0-9A-F]{32}$/ ? 'id' : 'no-id', "\n";
    print $s request(106, ++$o);
    ($r, $h, $body) = answer($s);
    my $ci = eval { $json->decode($body) } || {};
    print "cluster $r ", join(',', keys %{$ci->{brokerAddrTable} // {}}), "\n";
    print $s request(105, ++$o, {topic => 'NoSuchTopicYet'});
    ($r, $h, $body) = answer($s);
    my $rt = eval { $json->decode($body) } || {};
    print "route-new-topic $r ", $rt->{queueDatas}[0]{writeQueueNums} // '-', "\n";
    close($_) for ($s, $other);
}

sub perms {
    my ($port, $ro, $wo) = @_;
    my $s = connect_to($port);
    print $s request(310, 1, {a => 'PG', b => $ro, c => 'TBW102', d => '4', e => '0', f => '0',
        g => int(time * 1000), h => '0', i => "KEYS\x01p1\x02", j => '0', k => 'false'}, 'x');
    my ($r) = answer($s);
    print "send-readonly $r\n";
    print $s request(11, 2, {consumerGroup => 'PermG', topic => $wo, queueId => '0',
        queueOffset => '0', maxMsgNums => '32', sysFlag => '0', commitOffset => '0',
        suspendTimeoutMillis => '1000', subscription => '*', subVersion => '0'});
    ($r) = answer($s);
    print "pull-writeonly $r\n";
    print $s request(105, 3, {topic => $ro});
    my ($r3, $h, $body) = answer($s);
    my $rt = eval { $json->decode($body) } || {};
    print "route-readonly $r3 ", $rt->{queueDatas}[0]{perm} // '-', "\n";
    close($s);
}

sub addrs_text {
    my ($bd) = @_;
    return '- -' if !$bd;
    my $ad = $bd->{brokerAddrs} || {};
    return ($bd->{brokerName} // '-') . ' ' .
      (join(",", map { "$_=$ad->{$_}" } sort { $a <=> $b } keys %$ad) || "-");
}

sub route {
    my ($port, $topic) = @_;
    my $s = connect_to($port);
    print $s request(105, 1, {topic => $topic});
    my ($r, $h, $body) = answer($s);
    my $rt = eval { $json->decode($body) } || {};
    print "route ", (split / /, $r)[0], " ", addrs_text($rt->{brokerDatas}[0]), "\n";
    print $s request(106, 2);
    ($r, $h, $body) = answer($s);
    my $ci = eval { $json->decode($body) } || {};
    my ($name) = keys %{$ci->{brokerAddrTable} || {}};
    print "cluster ", (split / /, $r)[0], " ",
      addrs_text($name ? $ci->{brokerAddrTable}{$name} : undef), "\n";
    print $s request(310, 3, {a => 'PG', b => $topic, c => 'TBW102', d => '4', e => '0', f => '0',
        g => int(time * 1000), h => '0', i => "KEYS\x01route\x02", j => '0', k => 'false'}, 'x');
    ($r, $h) = answer($s);
    print "send ", (split / /, $r)[0], " ", ($h && $h->{remark} // '-'), "\n";
    close($s);
}

sub garbage {
    my ($port, $topic, $count, $seed) = @_;
    srand($seed);
    my @codes = (10, 11, 12, 14, 15, 29, 30, 31, 33, 34, 35, 36, 38, 41, 42, 105, 106, 310, 320,
        17, 37, 46, 101, 361, 200050);
    my @names = qw(topic queueId queueOffset maxMsgNums sysFlag commitOffset suspendTimeoutMillis
      subscription consumerGroup group offset delayLevel key maxNum beginTimestamp endTimestamp
      timestamp clientID a b c d e f g h i j k l m producerGroup properties);
    my @values = ('0', '1', '-1', '65536', '9223372036854775807', '-9223372036854775808',
        '99999999999999999999', '', 'x', $topic, "%RETRY%G", "KEYS\x01k\x02", 'TagA || TagB',
        '||', '*', 'a' x 300, "\x01\x02", '3.5', '1e9');
    my @bodies = ('', 'x', '{"clientID":"c","consumerDataSet":[{"groupName":"G"}]}',
        '{"consumerGroup":"G","clientId":"c","mqSet":[{"topic":"T","queueId":-1},{"topic":"T","queueId":1}]}',
        '{"consumerDataSet":7}', '[]', 'null', pack('NNNNN', 30, 0, 0, 0, 4) . 'abcd' . pack('n', 0),
        pack('NNNNN', 0xffffffff, 0, 0, 0, 0xffffffff), pack('N', 22) x 10);
    my ($sent, $answered, $reconnects) = (0, 0, 0);
    my $s = connect_to($port);
    my $sel = IO::Select->new($s);
    for my $i (1 .. $count) {
        my %ext;
        for (1 .. int(rand(8))) {
            my $v = $values[int(rand(@values))];
            $ext{$names[int(rand(@names))]} = rand() < 0.1 ? int(rand(1000)) - 500 : $v;
        }
        my $code = $codes[int(rand(@codes))];
        my %h = (code => $code, opaque => $i, flag => rand() < 0.1 ? 2 : 0, extFields => \%ext);
        my $f = frame($json->encode(\%h), $bodies[int(rand(@bodies))]);
        if (rand() < 0.05) { # a byte flipped somewhere in the header
            my $at = 8 + int(rand(length($f) - 8));
            substr($f, $at, 1) = chr(int(rand(256)));
        }
        if (!defined syswrite($s, $f)) {
            $s = connect_to($port);
            $sel = IO::Select->new($s);
            $reconnects++;
            next;
        }
        $sent++;
        while ($sel->can_read(0)) {
            my $buf;
            my $r = sysread($s, $buf, 1 << 20);
            if (!$r) {
                $s = connect_to($port);
                $sel = IO::Select->new($s);
                $reconnects++;
                last;
            }
            $answered++;
        }
    }
    # the gateway still answers
    my $t = connect_to($port);
    print $t request(105, 1, {topic => $topic});
    my ($r) = answer($t);
    print "garbage $sent $answered $reconnects alive=$r\n";
}

sub bench {
    my ($port, $topic, $conns, $count, $size) = @_;
    my $body = 'x' x $size;
    my $t0 = time;
    my @pids;
    for my $c (1 .. $conns) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $s = connect_to($port);
            for my $i (1 .. $count) {
                my %ext = (a => 'PG_bench', b => $topic, c => 'TBW102', d => '4', e => '-1',
                    f => '0', g => int(time * 1000), h => '0',
                    i => "KEYS\x01b$c-$i\x02", j => '0', k => 'false');
                print $s request(310, $i, \%ext, $body);
                my ($r) = answer($s, 60);
                exit 1 if $r !~ /^0 /;
            }
            exit 0;
        }
        push @pids, $pid;
    }
    my $bad = 0;
    for (@pids) {
        waitpid($_, 0);
        $bad++ if $?;
    }
    my $dt = time - $t0;
    printf "bench %d %.3f\n", $bad ? 0 : $conns * $count, $dt;
    exit($bad ? 1 : 0);
}

sub held {
    my ($port, $topic, $group, $writer) = @_;
    my ($a, $b, $c) = (connect_to($port), connect_to($port), connect_to($port));
    # a message to send back: its CommitLog offset from its id
    print $c request(310, 1, {a => 'PG', b => $topic, c => 'TBW102', d => '4', e => '0',
        f => '0', g => int(time * 1000), h => '0', i => "KEYS\x01held-0\x02", j => '0'}, 'held-0');
    my ($r, $h) = answer($c);
    my $phys = hex(substr($h->{extFields}{msgId} // ('0' x 32), 16));
    my $batch = '';
    for my $i (0 .. 1) {
        my $props = "KEYS\x01hb-$i\x02";
        my $body = "held-batch-$i";
        $batch .= pack('NNNNN', 22 + length($body) + length($props), 0, 0, 0, length($body))
          . $body . pack('n', length($props)) . $props;
    }
    kill 'STOP', $writer or die "kill -STOP $writer: $!";
    print $a request(320, 2, {a => 'PG', b => $topic, c => 'TBW102', d => '4', e => '0',
        f => '0', g => int(time * 1000), h => '0', i => '', j => '0', k => 'false', m => 'true'},
        $batch);
    print $b request(36, 3, {group => $group, offset => "$phys", delayLevel => '0',
        originMsgId => '', originTopic => $topic, maxReconsumeTimes => '16'});
    my @order;
    my ($ra) = answer($a, 1);
    my ($rb) = answer($b, 0.1);
    print "held-early ", ($ra eq 'none' ? 'none' : 'answered'), " ",
      ($rb eq 'none' ? 'none' : 'answered'), "\n";
    push @order, 'batch' if $ra ne 'none';
    push @order, 'sendback' if $rb ne 'none';
    print $c request(105, 4, {topic => $topic});
    ($r) = answer($c);
    push @order, 'route';
    print "route ", (split / /, $r)[0], "\n";
    print $c request(11, 5, {consumerGroup => $group, topic => $topic, queueId => '0',
        queueOffset => '0', maxMsgNums => '32', sysFlag => '0', commitOffset => '0',
        suspendTimeoutMillis => '0', subscription => '*', subVersion => '0'});
    ($r) = answer($c);
    push @order, 'pull';
    print "pull ", (split / /, $r)[0], "\n";
    kill 'CONT', $writer;
    if ($ra eq 'none') {
        ($ra, $h) = answer($a, 30);
        push @order, 'batch';
    }
    my @ids = split /,/, ($h->{extFields}{msgId} // '');
    if ($rb eq 'none') {
        ($rb) = answer($b, 30);
        push @order, 'sendback';
    }
    print "batch ", (split / /, $ra)[0], " ", scalar(@ids), "\n";
    print "sendback ", (split / /, $rb)[0], "\n";
    print "order @order\n";
}

my $mode = shift // '';
if ($mode eq 'hostile') {
    hostile(@ARGV);
} elsif ($mode eq 'requests') {
    requests(@ARGV);
} elsif ($mode eq 'perms') {
    perms(@ARGV);
} elsif ($mode eq 'garbage') {
    garbage(@ARGV);
} elsif ($mode eq 'held') {
    held(@ARGV);
} elsif ($mode eq 'route') {
    route(@ARGV);
} elsif ($mode eq 'bench') {
    bench(@ARGV);
} else {
    die "usage: remoting_client.pl hostile|requests PORT TOPIC | bench PORT TOPIC CONNS COUNT SIZE\n";
}
