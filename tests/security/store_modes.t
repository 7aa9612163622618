#!/bin/sh
# Another local user can neither read a store nor keep it down: every file
# and directory shmqd, its workers and shmqctl create gives others no
# permission (whatever the umask), so that user cannot read any of them;
# read locks that user holds on the lock file (byte 0 and the bytes older
# versions' producers locked, taken through a descriptor opened while it
# could) neither stop shmqd from starting nor keep producers out, and shmqd
# names the holder; a lock file open to the group (0660, older versions) is
# refused naming its mode;
# shmqd warns about world-readable names it finds at the top level of an
# existing store and changes no mode.  TAP output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
. "${SHMQ_SRC:-/work/main}/tests/security/common.sh"
broker_init sec-modes
sec_user_init
LOCKER=""
trap '[ -n "$LOCKER" ] && kill "$LOCKER" 2>/dev/null; broker_cleanup; sec_user_cleanup' EXIT
chmod 755 "$T" # only the store's own modes stand between the other user and the files

umask 000
start_broker
ok $? "shmqd starts on a new store (umask 000)" || diag "$T/shmqd.log"
"$CTL" send --store "$STORE" $SMALL TopicModes "secret-payload-1" --count 20 >"$T/send.out" 2>&1
ok $? "20 messages are sent" || diag "$T/send.out"
stop_broker
ok $? "shmqd stops cleanly"
umask 022

find "$STORE" -perm /o=rwx >"$T/open.list"
is "$(wc -l <"$T/open.list" | tr -d ' ')" "0" "no file or directory of the store gives others any permission"
[ -s "$T/open.list" ] && diag "$T/open.list"
find "$STORE" -type d ! -perm 750 >"$T/dirs.list"
is "$(wc -l <"$T/dirs.list" | tr -d ' ')" "0" "every directory is 0750" || diag "$T/dirs.list"
is "$(stat -c %a "$STORE/lock")" "600" "the lock file is 0600 (only the store's processes lock it)"
is "$(stat -c %a "$STORE/commitlog/00000000000000000000")" "640" "a CommitLog segment is 0640"

files=0
readable=0
for f in $(find "$STORE" -type f); do
    files=$((files + 1))
    as_user cat "$f" >/dev/null 2>&1 && readable=$((readable + 1)) && echo "# readable: $f"
done
[ "$files" -gt 5 ]
ok $? "the store holds files ($files)"
is "$readable" "0" "user $SEC_USER can read none of them"
as_user ls "$STORE" >/dev/null 2>&1
ok $((! $?)) "user $SEC_USER cannot list the store root"

# ---- read locks of another user on the lock file ------------------------------------------

# An existing store from before: the lock file open to others.  shmqd refuses it (and
# changes no mode) until the operator closes it.
chmod 644 "$STORE/lock"
shmqd_once "$T/open-lock.log"
is "$RUN_RC" "1" "while the lock file is open to others, shmqd refuses the store"
grep -q "$STORE/lock is owned by uid 0 with mode 0644" "$T/open-lock.log"
ok $? "the error names the lock file and its mode" || diag "$T/open-lock.log"
is "$(stat -c %a "$STORE/lock")" "644" "the lock file's mode is left as it was"
chmod 660 "$STORE/lock"
shmqd_once "$T/group-lock.log"
is "$RUN_RC" "1" "a lock file open to the group (0660, older versions) is refused too"
grep -q "$STORE/lock is owned by uid 0 with mode 0660.*chmod 0600" "$T/group-lock.log"
ok $? "the error names its mode and the fix" || diag "$T/group-lock.log"

# A process of another user that opened the lock file while it could holds read locks on
# byte 0 (the master's) and the 64 producer ring bytes.
perl -e '
    use Fcntl; my ($path, $uid) = @ARGV;
    open(my $f, "<", $path) or die "open: $!";
    $< = $> = $uid;
    for my $b (0, 16 .. 79) {
        my $fl = pack("s s x4 q q l x4", F_RDLCK, 0, $b, 1, 0);
        fcntl($f, 37, $fl) or die "F_OFD_SETLK byte $b: $!";   # 37: F_OFD_SETLK
    }
    print "locked\n"; $| = 1; sleep 600;' "$STORE/lock" "$SEC_UID" >"$T/locker.out" 2>&1 &
LOCKER=$!
i=0
while ! grep -q locked "$T/locker.out" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
grep -q locked "$T/locker.out"
ok $? "a process of user $SEC_USER holds read locks on byte 0 and the ring bytes" || diag "$T/locker.out"

chmod 600 "$STORE/lock"
chmod o+r "$STORE/checkpoint"
: >"$T/shmqd.log"
start_broker
ok $? "shmqd starts although user $SEC_USER holds read locks on the lock file" || diag "$T/shmqd.log"
grep -q "is locked by pid $LOCKER (perl, uid $SEC_UID), not a process of the store's user" "$T/shmqd.log"
ok $? "shmqd names the holder, its command and uid" || diag "$T/shmqd.log"
grep -q "$STORE/checkpoint can be read by every local user" "$T/shmqd.log"
ok $? "shmqd warns about the world-readable checkpoint" || diag "$T/shmqd.log"
is "$(stat -c %a "$STORE/checkpoint")" "644" "and does not change its mode"
"$CTL" send --store "$STORE" $SMALL TopicModes "after" --count 3 >"$T/send2.out" 2>&1
ok $? "producers still get a ring and send" || diag "$T/send2.out"
stop_broker
ok $? "shmqd stops cleanly"

done_testing
