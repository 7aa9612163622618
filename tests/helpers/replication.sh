# Shared shell functions of the replication tests (tests/integration/replication*.t),
# on top of broker.sh: the broker.sh store ($STORE) is the master, slaves are
# more shmqd processes with stores of their own (their processes and control
# blocks go with the test too).  After broker_init:
#     . "$SRC/tests/helpers/replication.sh"
# sets HA_PORT, FAKE_PORT, MASTER, SLAVE, SLAVE2, HA_SECRET, MCONF and the
# cleanup trap.  The link is the default one, TLS with the pre-shared key of
# HA_SECRET (a fresh secret file of the test, mode 0600); a test of
# RocketMQ's plain protocol calls use_plain_link first.

HA_PORT=$(free_port 2) # and HA_PORT - 1 for listenPort
FAKE_PORT=$(free_port)
MASTER="$STORE"
SLAVE="$T/slave"
SLAVE2="$T/slave2"
SLAVE_PID=""
SLAVE2_PID=""
HA_SECRET="$T/ha.secret"
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$HA_SECRET")
LINK="--set haSecretFile=$HA_SECRET"
MCONF="$LINK --set haListenPort=$HA_PORT --set listenPort=$((HA_PORT - 1))"
use_plain_link() { # RocketMQ's plain HA protocol on master and slaves from here on
    LINK="--set haPlainLink=true"
    MCONF="$LINK --set haListenPort=$HA_PORT --set listenPort=$((HA_PORT - 1))"
}
# ha_request PORT CODE: a request on the HA port at PORT over the test's link (OpenSSL's
# s_client with the secret's key on TLS, a plain socket else); prints "STATUS LEN BODY".
ha_request() {
    local feed='print "\xffSHMQRQ1", pack("N", $ARGV[0]); sleep 2'
    local show='local $/; my $b = <STDIN> // ""; my ($st, $len) = unpack("l>N", $b);
        print defined $len ? "$st $len " . substr($b, 8, $len) : "none", "\n"'
    if [ "${LINK#--set haSecretFile=}" != "$LINK" ]; then
        perl -e "$feed" "$2" | timeout 20 openssl s_client -connect "127.0.0.1:$1" -tls1_3 \
            -psk "$(tr -d ' \t\r\n' <"$HA_SECRET" | sha256sum | cut -d' ' -f1)" \
            -psk_identity shmq-ha/1 -quiet 2>/dev/null | perl -e "$show"
    else
        perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]")
            or die; print $s "\xffSHMQRQ1", pack("N", $ARGV[1]); my $b = "";
            while (my $r = sysread($s, $b, 65536, length($b))) { last if length($b) >= 8 &&
                length($b) >= 8 + unpack("N", substr($b, 4, 4)) } print $b' "$1" "$2" |
            perl -e "$show"
    fi
}
sconf() { # sconf MASTER_PORT: a slave's settings
    echo "--set brokerRole=SLAVE --set brokerId=1 $LINK" \
        "--set haMasterAddress=127.0.0.1:$1 --set haListenPort=1 --set listenPort=2"
}

# The slaves' processes and control blocks go with the test too.
slave_cleanup() {
    local p d name
    for p in $SLAVE_PID $SLAVE2_PID; do
        stop_pid "$p" 100
    done
    for d in "$SLAVE" "$SLAVE2"; do
        [ -d "$d" ] || continue
        name=$(STORE=$d; ctl_shm_name)
        [ -n "$name" ] && rm -f "/dev/shm/$name" "/dev/shm/$name.cons" "/dev/shm/$name.wake"
    done
}
trap 'slave_cleanup; broker_cleanup' EXIT

sjson() { # sjson DIR: status --json of the store at DIR
    "$CTL" status --store "$1" $SMALL --json 2>/dev/null
}
# jpath DIR PERL-EXPR: a value of DIR's status ($j is the decoded JSON).
jpath() {
    sjson "$1" | perl -MJSON::PP -e 'local $/; my $j = eval { JSON::PP->new->decode(<STDIN>) }
        or exit 1; my $v = eval $ARGV[0]; $v = $v ? 1 : 0 if JSON::PP::is_bool($v);
        print defined $v ? $v : "", "\n"' "$2"
}
# wait_jpath DIR PERL-EXPR VALUE [TENTHS]: until DIR's status shows VALUE there (default 30 s).
wait_jpath() {
    local lim=${4:-300} i=0
    while [ "$(jpath "$1" "$2")" != "$3" ] && [ $i -lt "$lim" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(jpath "$1" "$2")" = "$3" ]
}
start_slave() { # start_slave DIR MASTER_PORT LOGNAME: shmqd of a slave; its pid in LAST_PID
    "$SHMQD" --store "$1" $SMALL $(sconf "$2") >>"$T/$3.log" 2>&1 &
    LAST_PID=$!
    bg_add $LAST_PID
    wait_jpath "$1" '$j->{state}' running
}
# log_has FILE FROM_LINE PATTERN: PATTERN (grep) appears in FILE after line FROM_LINE (at most 60 s).
log_has() {
    local i=0
    while ! tail -n +"$2" "$1" 2>/dev/null | grep -q -- "$3" && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    tail -n +"$2" "$1" 2>/dev/null | grep -q -- "$3"
}
# caught_up: the slave's wrote equals the master's (at most 60 s); the two in WM and WS.
caught_up() { # [LEADER FOLLOWER]: another pair of stores (WM is the leader's wrote)
    local i=0 lead=${1:-$MASTER} follow=${2:-$SLAVE}
    while [ $i -lt 600 ]; do
        WM=$(jpath "$lead" '$j->{positions}{wrote}')
        WS=$(jpath "$follow" '$j->{positions}{wrote}')
        [ -n "$WM" ] && [ "$WM" = "$WS" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# same_log: every CommitLog segment of the slave is byte for byte the master's.
same_log() {
    local f bad=0
    for f in "$SLAVE"/commitlog/*; do
        cmp -s "$f" "$MASTER/commitlog/$(basename "$f")" || {
            echo "# $(basename "$f") differs" >&2
            bad=1
        }
    done
    return $bad
}
# consumed_ok TOPIC N: a new group on the slave reads N messages of TOPIC, no id twice.
consumed_ok() {
    "$CTL" consume --store "$SLAVE" $SMALL "$1" --group "G$1$n" --json --count "$2" \
        --timeout 20000 >"$T/c.json" 2>"$T/c.err" || return 1
    local got uniq
    got=$(wc -l <"$T/c.json")
    uniq=$(jfield uniq_key <"$T/c.json" | sort -u | wc -l)
    [ "$got" -eq "$2" ] && [ "$uniq" -eq "$2" ]
}
send_bg() { # send_bg TOPIC COUNT SIZE NAME: a producer in the background; pid in LAST_PID
    "$CTL" send --store "$MASTER" $SMALL "$1" --count "$2" --size "$3" --async 32 \
        >"$T/$4.out" 2>"$T/$4.err" &
    LAST_PID=$!
    bg_add $LAST_PID
}
sent_ok() { # sent_ok NAME COUNT: that producer acknowledged COUNT messages and no error
    grep -q "messages=$2 errors=0" "$T/$1.out"
}

