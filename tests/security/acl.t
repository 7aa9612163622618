#!/bin/sh
# aclEnable=true: config/acl.json decides which Unix users and groups may
# publish to and subscribe to which topics and use which consumer groups.
# Another user, member of the client group, publishes only where its
# account says, cannot create a topic it may not publish to, consumes and
# commits offsets only as its groups allow, each refusal naming the rule;
# a uid no account names may do nothing; the store's user is not bound by
# the file.  Edits are picked up while the store runs, a broken edit keeps
# the rules in force, and a missing or broken file stops the store from
# starting.  The store user's messages are delivered exactly once all the
# while.  Skipped unless run as root (it creates a user and a group).  TAP
# output; every wait is bounded.

. "${SHMQ_SRC:-/work/main}/tests/helpers/broker.sh"
if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (creates a user and a group)"
    exit 0
fi
. "${SHMQ_SRC:-/work/main}/tests/security/common.sh"
broker_init sec-acl
sec_user_init
sec_group_store shmqaclclients
STRANGER=4000123 # a uid no account names (and no passwd entry)
SMALL="$SMALL --set aclEnable=true"

# as_uid UID CMD...: run CMD as UID with $GROUP as a supplementary group.
as_uid() {
    local u=$1
    shift
    perl -e 'my ($u, $g) = (shift, shift); $( = $g; $) = "$g $g"; $< = $> = $u;
        exec @ARGV or exit 127' "$u" "$GID" "$@"
}
as_member() {
    as_uid "$SEC_UID" "$@"
}

# rules TEXT: config/acl.json, written as the store's user does (a new file renamed over it).
rules() {
    printf '%s\n' "$1" >"$STORE/config/acl.json.new" && mv "$STORE/config/acl.json.new" \
        "$STORE/config/acl.json"
}

# until_ok SECONDS CMD...: run CMD until it succeeds, at most SECONDS tries a second apart.
until_ok() {
    local n=$1 i=0
    shift
    while [ $i -lt "$n" ]; do
        "$@" && return 0
        sleep 1
        i=$((i + 1))
    done
    return 1
}

# ---- the file must be there and good -------------------------------------------------------
mkdir -p -m 0750 "$STORE/config"
shmqd_once "$T/nofile.log"
is "$RUN_RC" "2" "aclEnable=true without config/acl.json: shmqd refuses to start (exit 2)"
grep -q "aclEnable is true but $STORE/config/acl.json does not exist" "$T/nofile.log"
ok $? "naming the file" || diag "$T/nofile.log"
rules '{"accounts":[{"user":"'"$SEC_USER"'","topicPerms":["Orders=PUB|SUB","Orders=SUB"]}]}'
shmqd_once "$T/badfile.log"
is "$RUN_RC" "2" "a broken config/acl.json: shmqd refuses to start (exit 2)"
grep -q "accounts\[0\] (user $SEC_USER): topicPerms lists \"Orders\" twice" "$T/badfile.log"
ok $? "naming the account and the entry" || diag "$T/badfile.log"

rules '{"accounts":[{"user":"'"$SEC_USER"'","topicPerms":["Orders=PUB|SUB","Audit=SUB"],
  "groupPerms":["Billing=SUB","Ops=DENY"]}]}'
start_broker
ok $? "shmqd starts with a good config/acl.json" || diag "$T/shmqd.log"
grep -q "config/acl.json applies" "$T/shmqd.log"
ok $? "the master says the ACL applies" || diag "$T/shmqd.log"

# ---- publishing ------------------------------------------------------------------------------
"$CTL" send --store "$STORE" $SMALL Audit "from-owner" --count 5 >"$T/osend.out" 2>&1
ok $? "the store's user publishes to Audit, which no account lets it" || diag "$T/osend.out"
as_member "$CTL" send --store "$STORE" $SMALL Orders "from-member" --count 5 >"$T/msend.out" 2>&1
ok $? "user $SEC_USER publishes to Orders (Orders=PUB|SUB)" || diag "$T/msend.out"
as_member "$CTL" send --store "$STORE" $SMALL Audit "intruder" >"$T/asend.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "may not publish to topic Audit: accounts\[0\] (user $SEC_USER) in config/acl.json has Audit=SUB" "$T/asend.out"
ok $? "user $SEC_USER may not publish to Audit, naming the rule ($(head -c 200 "$T/asend.out"))" ||
    diag "$T/asend.out"
as_member "$CTL" send --store "$STORE" $SMALL Fresh "intruder" >"$T/fsend.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "may not publish to topic Fresh: .*no entry for it and defaultTopicPerm DENY" "$T/fsend.out"
ok $? "nor to a topic its account does not list (defaultTopicPerm DENY)" || diag "$T/fsend.out"
grep -q '"Fresh"' "$STORE/config/topics.json"
ok $((! $?)) "and that topic was not created"
as_uid $STRANGER "$CTL" send --store "$STORE" $SMALL Orders "stranger" >"$T/ssend.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "uid $STRANGER may not publish to topic Orders: no account in config/acl.json names its user or one of its groups" "$T/ssend.out"
ok $? "a member of the client group no account names may not publish" || diag "$T/ssend.out"

# ---- consuming and committing ------------------------------------------------------------
as_member "$HELPERS/consume" "$STORE" Orders Billing --count 5 --timeout 20000 >"$T/c1.out" \
    2>"$T/c1.err"
ok $? "user $SEC_USER consumes Orders as Billing" || diag "$T/c1.err"
is "$(grep -c '^msg ' "$T/c1.out")" "5" "all 5 messages, each once"
as_member "$HELPERS/consume" "$STORE" Audit Billing --count 5 --timeout 20000 >"$T/c2.out" \
    2>"$T/c2.err"
ok $? "and Audit (Audit=SUB): the store user's 5 messages" || diag "$T/c2.err"
is "$(grep -c '^msg ' "$T/c2.out")" "5" "each once"
as_member "$HELPERS/consume" "$STORE" Orders Ops --count 1 --timeout 5000 >"$T/c3.out" 2>"$T/c3.err"
is "$?" "3" "consuming as group Ops (Ops=DENY) is refused"
grep -q "may not consume as consumer group Ops: accounts\[0\] (user $SEC_USER) in config/acl.json has Ops=DENY" "$T/c3.err"
ok $? "naming the rule ($(head -c 200 "$T/c3.err"))" || diag "$T/c3.err"
as_member "$HELPERS/hostile_consumer" commit "$STORE" Ops Orders 0 1 >"$T/k1.out" 2>&1
is "$?" "3" "the master refuses an offset commit for group Ops"
grep -q "may not consume as consumer group Ops" "$T/k1.out"
ok $? "naming the rule" || diag "$T/k1.out"
as_member "$HELPERS/hostile_consumer" commit "$STORE" Billing Orders 0 1 >"$T/k2.out" 2>&1
ok $? "and takes one for group Billing" || diag "$T/k2.out"
as_uid $STRANGER "$HELPERS/consume" "$STORE" Orders Billing --count 1 --timeout 5000 \
    >"$T/c4.out" 2>"$T/c4.err"
is "$?" "3" "a uid no account names may not consume"
"$HELPERS/consume" "$STORE" Orders OwnerG --count 5 --timeout 20000 >"$T/c5.out" 2>"$T/c5.err"
ok $? "the store's user consumes Orders as any group" || diag "$T/c5.err"

# ---- edits while the store runs ---------------------------------------------------------
rules '{"accounts":[{"user":"'"$SEC_USER"'","topicPerms":["Orders=PUB|SUB","Audit=PUB|SUB"],
  "groupPerms":["Billing=SUB","Ops=DENY"]}]}'
send_audit() {
    as_member "$CTL" send --store "$STORE" $SMALL Audit "granted" >"$T/gsend.out" 2>&1
}
until_ok 30 send_audit
ok $? "after Audit=PUB|SUB is added, user $SEC_USER publishes to Audit" || diag "$T/gsend.out"
# The writer and the master each look at the file on their own clocks: wait for the master.
reload_logged() {
    grep -q "config/acl.json reloaded" "$T/shmqd.log"
}
until_ok 30 reload_logged
ok $? "the master logs the reload" || diag "$T/shmqd.log"
rules '{"accounts":[{"user":"'"$SEC_USER"'","topicPerms":["Audit=EVERYTHING"]}]}'
wait_logged() {
    grep -q "the rules loaded before stay in force" "$T/shmqd.log"
}
until_ok 30 wait_logged
ok $? "a broken edit is logged: the rules loaded before stay in force" || diag "$T/shmqd.log"
as_member "$CTL" send --store "$STORE" $SMALL Audit "still" >"$T/ksend.out" 2>&1
ok $? "and the rules in force still let user $SEC_USER publish to Audit" || diag "$T/ksend.out"
as_member "$CTL" send --store "$STORE" $SMALL Fresh "intruder" >"$T/k2send.out" 2>&1
ok $((! $?)) "and still refuse Fresh"

stop_broker
ok $? "shmqd stops cleanly" || diag "$T/shmqd.log"
done_testing
