#!/bin/sh
# Log levels: logLevel in broker.conf holds for every process of the store;
# `shmqctl log-level` shows it and changes it while the store runs (a worker
# started after the change follows it too); bad levels are refused.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init log-level

"$SHMQD" --store "$T/bad" --set logLevel=LOUD >"$T/bad.log" 2>&1
is "$?" "2" "logLevel=LOUD is refused (exit 2)"
grep -q "key 'logLevel': bad value 'LOUD': expected ERROR, WARN, INFO or DEBUG" "$T/bad.log"
ok $? "naming the key and the levels" || diag "$T/bad.log"

start_broker --set logLevel=WARN
ok $? "shmqd starts with logLevel=WARN" || diag "$T/shmqd.log"
is "$(count_lines ' INFO  ' "$T/shmqd.log")" "0" "no INFO line from any process"
"$CTL" log-level --store "$STORE" $SMALL >"$T/l1" 2>&1
ok $? "log-level prints the level" || diag "$T/l1"
is "$(cat "$T/l1")" "log level: WARN" "it is WARN"

"$CTL" log-level --store "$STORE" $SMALL LOUD >"$T/l2" 2>&1
is "$?" "2" "an unknown level is refused (exit 2)"
"$CTL" log-level --store "$STORE" $SMALL debug >"$T/l3" 2>&1
ok $? "log-level debug" || diag "$T/l3"
is "$(cat "$T/l3")" "log level: DEBUG (was WARN)" "it says the new level and the old"
"$CTL" restart --store "$STORE" $SMALL dispatcher >"$T/r1" 2>&1
ok $? "restart the dispatcher" || diag "$T/r1"
grep -q ' INFO  shmqd\[[0-9]*\]: restart of the dispatcher requested' "$T/shmqd.log"
ok $? "the master logs at INFO now" || diag "$T/shmqd.log"
grep -q ' INFO  dispatcher\[[0-9]*\]: running' "$T/shmqd.log"
ok $? "the new dispatcher follows the level set at run time, not broker.conf's" ||
    diag "$T/shmqd.log"

"$CTL" log-level --store "$STORE" $SMALL ERROR >/dev/null 2>&1
n_info=$(count_lines ' INFO  ' "$T/shmqd.log")
"$CTL" restart --store "$STORE" $SMALL flusher >"$T/r2" 2>&1
ok $? "restart the flusher at level ERROR" || diag "$T/r2"
is "$(count_lines ' INFO  ' "$T/shmqd.log")" "$n_info" "no new INFO line"
stop_broker
ok $? "shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

done_testing
