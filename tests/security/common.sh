# Shared by tests/security/*.t: another Unix user (created if missing,
# removed at the end when the test created it), commands run as that user,
# and shmqd run in the foreground with a bounded wait.

SEC_USER=shmqsec
SEC_MADE=""

# sec_user_init: make sure $SEC_USER exists; prints "Bail out!" without useradd.
sec_user_init() {
    if ! id "$SEC_USER" >/dev/null 2>&1; then
        useradd -M -N -s /bin/sh "$SEC_USER" >/dev/null 2>&1 || {
            echo "Bail out! cannot create user $SEC_USER (tests run as root)"
            exit 1
        }
        SEC_MADE=1
    fi
    SEC_UID=$(id -u "$SEC_USER")
}

sec_user_cleanup() {
    [ -n "$SEC_MADE" ] && userdel "$SEC_USER" >/dev/null 2>&1
    SEC_MADE=""
}

# as_user CMD...: run CMD as $SEC_USER (no login shell, no password).
as_user() {
    perl -e 'my $u = shift; my @p = getpwnam($u) or die "no user $u\n";
        $( = $) = "$p[3] $p[3]"; $< = $> = $p[2]; exec @ARGV or exit 127' "$SEC_USER" "$@"
}

# shmqd_once LOG [ARGS]: run shmqd in the foreground for at most 30 s; its status in RUN_RC
# (124 when it had to be killed: it hung).
shmqd_once() {
    local log=$1
    shift
    timeout -s KILL 30 "$SHMQD" --store "$STORE" $SMALL "$@" >"$log" 2>&1
    RUN_RC=$?
    [ "$RUN_RC" -eq 137 ] && RUN_RC=124
}
