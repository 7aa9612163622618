# Shared by tests/security/*.t: another Unix user, one per test file (created if
# missing, removed at the end when the test created it), commands run as that user,
# and shmqd run in the foreground with a bounded wait.

# One user per test file: tests run two at a time, and one that removes the user it made
# must not take it from another still using it.
SEC_USER=$(printf 'shmqsec-%s' "$(basename "$0" .t)" | tr -c 'a-z0-9_\n-' '_' | cut -c1-31)
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

# sec_group_store NAME: the client group NAME (created if missing, removed at exit when
# made here; $SEC_USER is taken out of it at exit) in GROUP and GID, and $STORE made
# 2750 with that group (set-group-ID: every file inherits it).  Sets the EXIT trap.
sec_group_store() {
    GROUP=$1
    GROUP_MADE=""
    if ! getent group "$GROUP" >/dev/null; then
        groupadd "$GROUP" || { echo "Bail out! cannot create group $GROUP"; exit 1; }
        GROUP_MADE=1
    fi
    trap 'broker_cleanup; gpasswd -d "$SEC_USER" "$GROUP" >/dev/null 2>&1; [ -n "$GROUP_MADE" ] && groupdel "$GROUP"; sec_user_cleanup' EXIT
    GID=$(getent group "$GROUP" | cut -d: -f3)
    chmod 755 "$T"
    mkdir -m 2750 "$STORE"
    chgrp "$GROUP" "$STORE"
    chmod 2750 "$STORE"
}
