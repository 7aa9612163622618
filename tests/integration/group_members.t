#!/bin/sh
# Consumer groups with members (docs/operations.md "Consumer groups"): members
# of a group in clustering mode share the topic's queues (each message to one
# member, the queues divided as RocketMQ's AllocateMessageQueueAveragely does);
# members that join and leave while messages flow (SIGTERM) lose and
# duplicate nothing; a member killed with SIGKILL costs at most a redelivery,
# never a message, and is gone from the group at once; broadcasting members
# each read everything without moving the group's offsets; group list, show
# and progress show members and owners; group delete is refused while members
# live; a client that is not a queue's owner cannot commit it, release what it
# was not asked to, or join twice on one connection.
# TAP output; every wait is bounded.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init group-members

# member NAME [ARGS...]: shmqctl consume of TopicM as a member of group GM in the background
# (line-buffered JSON lines in $T/NAME.out, so that what it printed survives a SIGKILL); its
# pid in MPID.
member() {
    local name=$1
    shift
    stdbuf -oL "$CTL" consume --store "$STORE" $SMALL TopicM --group GM --json --timeout 4000 \
        "$@" >"$T/$name.out" 2>"$T/$name.err" &
    MPID=$!
    bg_add $MPID
}
# ids FILE...: "queue:offset" of every message in the files, sorted (duplicates kept).
ids() {
    cat "$@" | perl -MJSON::PP -ne 'my $j = decode_json($_); print "$j->{queue}:$j->{queue_offset}\n"' |
        sort
}
# queues FILE: the queues a member read, "0 1".
queues() {
    perl -MJSON::PP -ne 'my $j = decode_json($_); $q{$j->{queue}} = 1;
        END { print join(" ", sort { $a <=> $b } keys %q), "\n" }' "$1"
}
# in_order FILE: each queue's offsets rise, one message after the other.
in_order() {
    perl -MJSON::PP -ne 'my $j = decode_json($_); my $q = $j->{queue};
        exit 1 if defined $last{$q} && $j->{queue_offset} <= $last{$q}; $last{$q} = $j->{queue_offset}' "$1"
}
# show [GROUP]: group show GROUP (GM) --json, "pid queues_held queues" per member.
show() {
    "$CTL" group --store "$STORE" $SMALL show "${1:-GM}" --json 2>"$T/show.err" |
        perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>);
            print "$_->{pid} $_->{queues_held} $_->{queues}\n" for @{$j->{members}}'
}
# wait_members N [GROUP]: group show lists N members (bounded, 10 s).
wait_members() {
    local i=0
    while [ "$(show "$2" | grep -c .)" != "$1" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(show "$2" | grep -c .)" = "$1" ]
}
# read_all N FILE...: the files hold N lines between them (bounded, 60 s).  Members that must
# read a known number are stopped (SIGTERM) once they have, not left to an idle timeout that
# a loaded machine can reach before the messages are even sent.
read_all() {
    local want=$1 i=0
    shift
    until [ "$(cat "$@" 2>/dev/null | grep -c .)" -ge "$want" ] || [ $i -ge 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
}
# wait_divided GROUP PER: every member holds PER of the topic's 8 queues, none twice.
wait_divided() {
    local i=0
    until show "$1" >"$T/div" &&
        perl -e 'my %q; while (<STDIN>) { my ($pid, $h, @qs) = split; exit 1 if $h != $ARGV[0]; $q{$_}++ for @qs }
            exit !(keys %q == 8 && !grep { $_ != 1 } values %q)' "$2" <"$T/div" || [ $i -ge 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ $i -lt 50 ]
}
# all_sent N: the messages 0..N-1 of 8 queues, as ids prints them, N/8 per queue.
all_sent() {
    perl -e 'for my $q (0..7) { print "$q:$_\n" for 0 .. $ARGV[0] / 8 - 1 }' "$1" | sort
}

start_broker
ok $? "shmqd starts" || diag "$T/shmqd.log"
"$CTL" topic --store "$STORE" $SMALL create TopicM --queues 8 >"$T/topic.out" 2>&1
ok $? "TopicM is created with 8 queues" || diag "$T/topic.out"

# ---- two members share the queues ------------------------------------------------------------
member a --timeout 60000
A=$MPID
member b --timeout 60000
B=$MPID
wait_members 2
ok $? "group show lists both members" || diag "$T/show.err"
# The first to join held every queue until the second came: wait for the hand-over.
wait_divided GM 4
ok $? "each holds four queues, every queue is held once" || diag "$T/div"
"$CTL" send --store "$STORE" $SMALL TopicM m --count 400 >"$T/send.out" 2>&1
ok $? "400 messages are sent, 50 per queue" || diag "$T/send.out"
sleep 0.5
"$CTL" group --store "$STORE" $SMALL list >"$T/list.out" 2>&1
grep -q "^group=GM members=2 queues_held=8 model=clustering$" "$T/list.out"
ok $? "group list: GM with 2 members holding 8 queues" || diag "$T/list.out"
"$CTL" metrics --store "$STORE" $SMALL >"$T/metrics.out" 2>&1
grep -q '^shmq_group_members{group="GM"} 2$' "$T/metrics.out"
ok $? "the metrics count 2 members of GM" || diag "$T/metrics.out"
"$CTL" group --store "$STORE" $SMALL progress GM --json >"$T/prog.json" 2>&1
perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>); my %o;
    $o{$_->{owner} // "none"}++ for @{$j->{queues}};
    exit !(keys %o == 2 && !grep { $_ != 4 } values %o)' <"$T/prog.json"
ok $? "group progress names two owners, four queues each" || diag "$T/prog.json"
"$CTL" group --store "$STORE" $SMALL delete GM >"$T/del.out" 2>&1
[ $? -eq 1 ] && grep -q "group GM has 2 live member(s)" "$T/del.out"
ok $? "group delete is refused while members live" || diag "$T/del.out"
read_all 400 "$T/a.out" "$T/b.out"
stop_pid $A 100 # leaves cleanly: what it printed is committed
stop_pid $B 100
ids "$T/a.out" "$T/b.out" >"$T/ab.ids"
all_sent 400 >"$T/400.ids"
cmp -s "$T/ab.ids" "$T/400.ids"
ok $? "together they read the 400 messages, each once" || diag "$T/ab.ids"
[ "$(queues "$T/a.out")" != "$(queues "$T/b.out")" ] && [ "$(wc -l <"$T/a.out")" -gt 0 ] &&
    [ "$(wc -l <"$T/b.out")" -gt 0 ]
ok $? "on different queues ($(queues "$T/a.out") and $(queues "$T/b.out"))"
in_order "$T/a.out" && in_order "$T/b.out"
ok $? "each queue in order"
"$CTL" group --store "$STORE" $SMALL progress GM --json >"$T/prog1.json" 2>&1
cat "$T/a.out" "$T/b.out" | perl -MJSON::PP -e '
    my %ts; while (<STDIN>) { my $j = decode_json($_); $ts{"$j->{queue}:$j->{queue_offset}"} = $j->{store_ts} }
    open(my $f, "<", $ARGV[0]) or die; local $/; my $p = decode_json(<$f>);
    for my $q (@{$p->{queues}}) { my $want = $ts{"$q->{queue}:" . ($q->{committed} - 1)};
        exit 1 unless defined $want && $q->{last_consumed_ms} == $want }' "$T/prog1.json"
ok $? "progress gives each queue the store time of the last message consumed (lastTimestamp)" ||
    diag "$T/prog1.json"
wait_members 0
ok $? "members that exit leave the group" || diag "$T/show.err"

# ---- joins and leaves while messages flow: nothing lost, nothing twice --------------------------
(for i in $(seq 1 30); do
    "$CTL" send --store "$STORE" $SMALL TopicM m --count 40 >>"$T/flow.out" 2>&1 || exit 1
    sleep 0.1
done) &
FLOW=$!
bg_add $FLOW
member c --timeout 60000
C=$MPID
sleep 0.8
member d --timeout 60000
D=$MPID
sleep 0.8
stop_pid $C 100 # leaves cleanly: what it printed is committed
member e --timeout 60000
E=$MPID
wait_pid $FLOW 900
ok $? "1200 more messages are sent meanwhile, 40 at a time" || diag "$T/flow.out"
read_all 1200 "$T/c.out" "$T/d.out" "$T/e.out"
stop_pid $D 100
stop_pid $E 100
ids "$T/c.out" "$T/d.out" "$T/e.out" >"$T/cde.ids"
all_sent 1600 >"$T/1600.ids"
comm -13 "$T/400.ids" "$T/1600.ids" >"$T/new.ids"
cmp -s "$T/cde.ids" "$T/new.ids"
ok $? "members joining and leaving read the 1200, each once" ||
    { diff "$T/cde.ids" "$T/new.ids" | head -20 >&2; diag "$T/shmqd.log"; }
in_order "$T/c.out" && in_order "$T/d.out" && in_order "$T/e.out"
ok $? "each queue in order, in every member"
grep -q "group GM: member .* joined" "$T/shmqd.log" && grep -q "group GM: member .* left" "$T/shmqd.log"
ok $? "the log says who joined and left" || diag "$T/shmqd.log"

# ---- a member killed: its queues go on, nothing lost -----------------------------------------
# poller NAME GROUP TOPIC [ARGS...]: tests/helpers/group_poll in the background ("queue offset"
# lines in $T/NAME.out); its pid in MPID.
poller() {
    local name=$1 group=$2 topic=$3
    shift 3
    "$HELPERS/group_poll" "$STORE" "$topic" "$group" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    MPID=$!
    bg_add $MPID
}
# pids FILE...: "queue:offset" of group_poll output, sorted (duplicates kept).
pids() {
    cat "$@" | grep -v summary | cut -d' ' -f1,2 | tr ' ' ':' | sort
}
"$CTL" send --store "$STORE" $SMALL TopicM m --count 400 >"$T/send3.out" 2>&1
ok $? "400 more messages are sent" || diag "$T/send3.out"
poller g GM TopicM --slow 50
G=$MPID
poller h GM TopicM --slow 50
H=$MPID
poller k GM TopicM --slow 50
K=$MPID
wait_members 3
ok $? "three members poll slowly" || diag "$T/show.err"
i=0
until [ "$(grep -c . "$T/g.out")" -ge 20 ] || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -KILL $G
wait $G 2>/dev/null
GOT_G=$(grep -c . "$T/g.out")
i=0
while [ "$(show | grep -c .)" != 2 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ "$(show | grep -c .)" = 2 ]
ok $? "a member killed with SIGKILL mid-load ($GOT_G read) is gone from the group within 5 s"
wait_pid $H 600
wait_pid $K 600
pids "$T/g.out" "$T/h.out" "$T/k.out" >"$T/ghk.all"
uniq "$T/ghk.all" >"$T/ghk.ids"
uniq -d "$T/ghk.all" >"$T/ghk.dups"
all_sent 2000 >"$T/2000.ids"
comm -13 "$T/1600.ids" "$T/2000.ids" >"$T/new3.ids"
cmp -s "$T/ghk.ids" "$T/new3.ids"
ok $? "every one of the 400 was read (at least once)" ||
    { diff "$T/ghk.ids" "$T/new3.ids" | head -20 >&2; }
DUPS=$(grep -c . "$T/ghk.dups")
pids "$T/g.out" | comm -23 "$T/ghk.dups" - >"$T/dups.other"
[ "$DUPS" -le 16 ] && [ ! -s "$T/dups.other" ]
ok $? "read twice: $DUPS, at most the killed member's last uncommitted batch (16), all its own" ||
    diag "$T/ghk.dups"
"$CTL" group --store "$STORE" $SMALL progress GM --json >"$T/prog2.json" 2>&1
is "$(perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{total_lag}' <"$T/prog2.json")" 0 \
    "the group's lag is 0"

# ---- orderly members with sharding keys, joining and leaving -----------------------------------
# A key's messages go to one queue in the order sent, so per-queue order at consume time,
# across every member (one monotonic clock), is per-key order.
"$CTL" topic --store "$STORE" $SMALL create TopicO --queues 8 >"$T/topico.out" 2>&1
ok $? "TopicO is created with 8 queues" || diag "$T/topico.out"
poller o1 GO TopicO --orderly --stamp --slow 20
O1=$MPID
poller o2 GO TopicO --orderly --stamp --slow 20
O2=$MPID
(for r in 1 2 3 4 5; do
    for key in k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12; do
        "$CTL" send --store "$STORE" $SMALL TopicO "$key" --sharding-key "$key" --count 10 \
            >>"$T/sendo.out" 2>&1 || exit 1
    done
    sleep 0.2
done) &
SENDO=$!
bg_add $SENDO
sleep 0.5
poller o3 GO TopicO --orderly --stamp --slow 20
O3=$MPID
sleep 0.7
stop_pid $O1 100
poller o4 GO TopicO --orderly --stamp --slow 20
O4=$MPID
wait_pid $SENDO 900
ok $? "600 messages of 12 sharding keys are sent meanwhile" || diag "$T/sendo.out"
wait_pid $O2 600
wait_pid $O3 600
wait_pid $O4 600
cat "$T/o1.out" "$T/o2.out" "$T/o3.out" "$T/o4.out" | grep -v summary | sort -n -k3 >"$T/o.all"
is "$(cut -d' ' -f1,2 "$T/o.all" | sort -u | grep -c .)" 600 "orderly members read the 600"
is "$(grep -c . "$T/o.all")" 600 "each once"
perl -ne 'my ($q, $o) = split; exit 1 if exists $next{$q} && $o != $next{$q}; $next{$q} = $o + 1' \
    "$T/o.all"
ok $? "in consume order across the members, every queue (every key) goes 0, 1, 2, ... without a gap" ||
    diag "$T/o.all"

# ---- broadcasting ---------------------------------------------------------------------------
member x --broadcast --from first
X=$MPID
member y --broadcast --from first
Y=$MPID
wait_members 2
show >"$T/show2"
perl -ne 'my ($pid, $n) = split; exit 1 if $n != 0' "$T/show2"
ok $? "broadcasting members hold no queues" || diag "$T/show2"
wait_pid $X 300
wait_pid $Y 300
is "$(wc -l <"$T/x.out" | tr -d ' ')" 0 "a broadcasting member starts at the group's offsets (nothing left)"
is "$(wc -l <"$T/y.out" | tr -d ' ')" 0 "so does the second"
member x --broadcast
X=$MPID
member y --broadcast
Y=$MPID
member v --broadcast
V=$MPID
wait_members 3
ok $? "three broadcasting members run" || diag "$T/show.err"
"$CTL" send --store "$STORE" $SMALL TopicM m --count 40 >"$T/send4.out" 2>&1
wait_pid $X 300
wait_pid $Y 300
wait_pid $V 300
all_sent 2040 | comm -13 "$T/2000.ids" - >"$T/new4.ids"
ids "$T/x.out" >"$T/x.ids"
ids "$T/y.out" >"$T/y.ids"
ids "$T/v.out" >"$T/v.ids"
cmp -s "$T/x.ids" "$T/new4.ids" && cmp -s "$T/y.ids" "$T/new4.ids" && cmp -s "$T/v.ids" "$T/new4.ids"
ok $? "each of the three reads all 40 new messages, once" || diag "$T/x.ids"
"$CTL" group --store "$STORE" $SMALL progress GM --json >"$T/prog3.json" 2>&1
is "$(perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{total_lag}' <"$T/prog3.json")" 40 \
    "and the group's committed offsets did not move (lag 40)"

# ---- members polling with shmq_consumer_poll -------------------------------------------------
"$CTL" topic --store "$STORE" $SMALL create TopicP --queues 8 >"$T/topicp.out" 2>&1
ok $? "TopicP is created with 8 queues" || diag "$T/topicp.out"
"$HELPERS/group_poll" "$STORE" TopicP GP >"$T/p1.out" 2>"$T/p1.err" &
P1=$!
bg_add $P1
"$HELPERS/group_poll" "$STORE" TopicP GP >"$T/p2.out" 2>"$T/p2.err" &
P2=$!
bg_add $P2
wait_members 2 GP && wait_divided GP 4
ok $? "two polling members of GP hold four queues each" || diag "$T/div"
"$CTL" send --store "$STORE" $SMALL TopicP p --count 400 >"$T/sendp.out" 2>&1
ok $? "400 messages are sent to TopicP" || diag "$T/sendp.out"
wait_pid $P1 300
wait_pid $P2 300
grep -h -v summary "$T/p1.out" "$T/p2.out" | tr ' ' ':' | sort >"$T/p12.ids"
cmp -s "$T/p12.ids" "$T/400.ids"
ok $? "shmq_consumer_poll members read the 400, each once" || diag "$T/p1.err"
[ "$(grep -v summary "$T/p1.out" | cut -d' ' -f1 | sort -u | tr '\n' ' ')" != \
    "$(grep -v summary "$T/p2.out" | cut -d' ' -f1 | sort -u | tr '\n' ' ')" ]
ok $? "from different queues"
# An offsets reset while a polling member runs: it reads again from the new offsets and does
# not commit its old position over them.
"$CTL" send --store "$STORE" $SMALL TopicP p --count 200 >"$T/sendp2.out" 2>&1
"$HELPERS/group_poll" "$STORE" TopicP GP --slow 100 --timeout 2000 >"$T/p3.out" 2>"$T/p3.err" &
P3=$!
bg_add $P3
i=0
until [ "$(grep -c . "$T/p3.out")" -ge 32 ] || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
"$CTL" offsets --store "$STORE" $SMALL reset --group GP --topic TopicP --to earliest >"$T/rp.out" 2>&1
ok $? "the group is reset to earliest while it polls" || diag "$T/rp.out"
wait_pid $P3 900
perl -ne 'my ($q, $o) = split; $low++ if defined $o && $o < 50; END { exit !($low >= 400) }' "$T/p3.out"
ok $? "the member read the 400 older messages again" || diag "$T/p3.out"
"$CTL" group --store "$STORE" $SMALL progress GP --json >"$T/progp.json" 2>&1
is "$(perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{total_lag}' <"$T/progp.json")" 0 \
    "and committed up to the end (lag 0)"
# A member that also asks for its queues (shmq_consumer_queues) before each poll: the poll
# still follows the queues held, though the other call saw them change first.
"$HELPERS/group_poll" "$STORE" TopicP GQ --queues-each --count 600 >"$T/q1.out" 2>"$T/q1.err"
is "$(grep -v summary "$T/q1.out" | sort -u | grep -c .)" 600 \
    "a member calling shmq_consumer_queues between polls reads TopicP's 600 messages" ||
    diag "$T/q1.err"

# ---- a client that is not the owner ----------------------------------------------------------
member z
Z=$MPID
wait_members 1
SOCK="$STORE/shmq.sock"
# One connection: join GM for TopicM, commit a queue the member z holds, release it (not
# asked), join again, join with unknown flags; prints each reply "status text".  The queues
# are divided in the order of the members' client ids, "pid@id" compared as strings: z takes
# 0-3 when its pid sorts first, else 4-7 (QZ, written to hostile.q).
perl -MSocket -e '
    my ($path, $z, $qfile) = @ARGV;
    my $qz = "$z\@" lt "$$\@" ? 0 : 4;
    open(my $qf, ">", $qfile) or die; print $qf "$qz\n"; close $qf;
    socket(my $s, AF_UNIX, SOCK_SEQPACKET, 0) or die "socket: $!";
    connect($s, pack_sockaddr_un($path)) or die "connect: $!";
    sub frame { my ($type, $g, $t, $q, $off) = @_;
        my $p = pack("v v l< q<", length $g, length $t, $q, $off) . $g . $t;
        pack("V v v", 0x31524d53, $type, length $p) . $p }
    sub call { send($s, $_[0], 0) or die "send: $!"; my $r; recv($s, $r, 512, 0);
        my (undef, $type, $len) = unpack("V v v", $r);
        my $st = unpack("l<", substr($r, 8, 4));
        my $text = $type == 0x82 ? substr($r, 14, unpack("v", substr($r, 12, 2))) : "";
        print "$st $text\n" }
    call(frame(4, "GM", "TopicM", 0, 0));
    sleep 1;
    call(frame(2, "GM", "TopicM", $qz, 0));
    call(frame(5, "GM", "TopicM", $qz, -1));
    call(frame(4, "GM", "TopicM", 0, 0));
' "$SOCK" "$Z" "$T/hostile.q" >"$T/hostile.out" 2>&1
QZ=$(cat "$T/hostile.q" 2>/dev/null)
perl -MSocket -e '
    socket(my $s, AF_UNIX, SOCK_SEQPACKET, 0) or die; connect($s, pack_sockaddr_un($ARGV[0])) or die;
    my $p = pack("v v l< q<", 2, 6, 0x80, 0) . "GMTopicM";
    send($s, pack("V v v", 0x31524d53, 4, length $p) . $p, 0); recv($s, my $r, 512, 0);
    print unpack("l<", substr($r, 8, 4)), "\n"' "$SOCK" >>"$T/hostile.out" 2>&1
sed -n 1p "$T/hostile.out" | grep -q "^0 "
ok $? "a client joins the group" || diag "$T/hostile.out"
sed -n 2p "$T/hostile.out" | grep -q "^-10023 group GM: queue TopicM/$QZ is not held by this member"
ok $? "its commit of a queue another member holds is refused (SHMQ_E_NOT_OWNER)" ||
    diag "$T/hostile.out"
sed -n 3p "$T/hostile.out" | grep -q "^-10019 .*did not ask this member to release it"
ok $? "a release it was not asked for is refused" || diag "$T/hostile.out"
sed -n 4p "$T/hostile.out" | grep -q "^-16 this connection is a member of group GM already"
ok $? "a second join on one connection is refused" || diag "$T/hostile.out"
sed -n 5p "$T/hostile.out" | grep -q "^-10019$"
ok $? "unknown member flags are refused" || diag "$T/hostile.out"
"$CTL" group --store "$STORE" $SMALL progress GM --json >"$T/prog4.json" 2>&1
perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>);
    exit !grep { $_->{queue} == $ARGV[0] && $_->{committed} == 255 } @{$j->{queues}}' "$QZ" \
    <"$T/prog4.json"
ok $? "queue $QZ's committed offset is the member's, not the refused one's" || diag "$T/prog4.json"
wait_pid $Z 300
wait_members 0
ok $? "no member is left" || diag "$T/show.err"

# ---- members that subscribe otherwise are reported ---------------------------------------------
member u
U=$MPID
member w --tags TagA
W=$MPID
wait_members 2
"$CTL" group --store "$STORE" $SMALL list >"$T/list2.out" 2>&1
grep -q "^group=GM members=2 queues_held=8 model=clustering inconsistent$" "$T/list2.out"
ok $? "group list flags a group whose members subscribe otherwise" || diag "$T/list2.out"
"$CTL" group --store "$STORE" $SMALL show GM >"$T/show3.out" 2>&1
grep -q 'subscription="TagA"' "$T/show3.out" && grep -q 'subscription="\*"' "$T/show3.out"
ok $? "group show shows each member's subscription" || diag "$T/show3.out"
grep -q "WARN .*group GM is inconsistent: member .* subscribes TopicM '.*' (clustering), member .* TopicM '.*' (clustering)" \
    "$T/shmqd.log"
ok $? "and the log warns, naming both" || diag "$T/shmqd.log"
wait_pid $U 300
wait_pid $W 300
wait_members 0
"$CTL" group --store "$STORE" $SMALL delete GM >"$T/del2.out" 2>&1
ok $? "group delete works once the members are gone" || diag "$T/del2.out"

stop_broker
ok $? "the store stops cleanly" || diag "$T/shmqd.log"
done_testing
