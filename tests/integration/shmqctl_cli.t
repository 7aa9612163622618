#!/bin/sh
# shmqctl's command line: usage errors and bad configuration exit 2 with a
# message naming the problem, unknown configuration keys are warned about,
# help and version work, failures of the command itself exit 1.
# TAP output; exits non-zero if any test fails.

BUILD=${SHMQ_BUILD:-/work/main/build}
CTL="$BUILD/shmqctl"
if [ ! -x "$CTL" ]; then
    echo "Bail out! $CTL not built"
    exit 1
fi
T=$(mktemp -d /tmp/shmqctl-cli.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM

. "${SHMQ_SRC:-$(dirname "$0")/../..}/tests/helpers/tap.sh"
# run CMD...: runs shmqctl, output in $T/out and $T/err, status in $rc.
run() {
    "$CTL" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
has_err() {
    grep -q -- "$1" "$T/err" || { sed 's/^/#   /' "$T/err"; return 1; }
}

SMALL="--set mappedFileSizeCommitLog=65536 --set mappedFileSizeConsumeQueue=2000 --set maxMessageSize=8192"
S="$T/store"

run
is "$rc" "2" "no command: exit 2"
has_err "usage: shmqctl"
ok $? "no command: usage on stderr"

run frobnicate --store "$S"
is "$rc" "2" "unknown command: exit 2"
has_err "unknown command 'frobnicate'"
ok $? "unknown command: named in the message"
has_err "usage: shmqctl"
ok $? "unknown command: usage on stderr"

run help
is "$rc" "0" "help: exit 0"
for c in gen dump verify recover; do
    grep -q "^  $c " "$T/out"
    ok $? "help lists $c"
done
run --help
is "$rc" "0" "--help: exit 0"
run gen --help
is "$rc" "0" "gen --help: exit 0"
grep -q -- "--topic" "$T/out"
ok $? "gen --help shows gen's options"
run version
is "$rc" "0" "version: exit 0"
grep -q "^shmqctl (shmq) [0-9]" "$T/out"
ok $? "version prints the version"

run gen --store "$S" $SMALL --count 10 --size 10
is "$rc" "2" "gen without --topic: exit 2"
has_err "needs --topic"
ok $? "gen without --topic: says so"
run gen --store "$S" $SMALL --topic T --count 12x --size 10
is "$rc" "2" "a count with trailing junk: exit 2"
has_err "--count"
ok $? "the bad count is named"
run gen --store "$S" $SMALL --topic T --count 10 --size 2Q
is "$rc" "2" "a size with an unknown suffix: exit 2"
run gen --store "$S" $SMALL --topic T --count 10 --size 16K
is "$rc" "2" "a size over maxMessageSize: exit 2"
has_err "maxMessageSize"
ok $? "the limit is named"
run gen --store "$S" $SMALL --topic 'bad topic!' --count 10 --size 10
is "$rc" "2" "an invalid topic: exit 2"
run gen --store "$S" $SMALL --topic T --count 10 --size 10 --queues 0
is "$rc" "2" "zero queues: exit 2"
run gen --store "$S" $SMALL --topic T --count 10 --size 10 --bogus
is "$rc" "2" "an unknown option: exit 2"
has_err "unknown option '--bogus'"
ok $? "the unknown option is named"
run verify --store "$S" $SMALL --topic T
is "$rc" "2" "an option of another command: exit 2"
run dump --store "$S" $SMALL
is "$rc" "2" "dump without what to dump: exit 2"
run dump --store "$S" $SMALL indexfile
is "$rc" "2" "dump of an unknown kind: exit 2"
run dump --store "$S" $SMALL consumequeue T
is "$rc" "2" "dump consumequeue without a queue id: exit 2"
run gen --store "$S" $SMALL --set justakey --topic T --count 1 --size 1
is "$rc" "2" "--set without '=': exit 2"

run gen --store "$S" $SMALL --set mappedFileSizeCommitLog=lots --topic T --count 1 --size 1
is "$rc" "2" "a bad --set value: exit 2"
has_err "mappedFileSizeCommitLog"
ok $? "the bad key is named"
[ ! -e "$S" ]
ok $? "nothing was created"

printf 'storePathRootDir=%s\nflushDiskType=SOMETIMES\n' "$S" >"$T/broker.conf"
run gen -c "$T/broker.conf" $SMALL --topic T --count 1 --size 1
is "$rc" "2" "a bad value in the config file: exit 2"
has_err "flushDiskType"
ok $? "the bad key from the file is named"
run verify -c "$T/missing.conf"
is "$rc" "2" "an unreadable config file: exit 2"

printf 'storePathRootDir=%s\nmappedFileSizeCommitLog=65536\nmappedFileSizeConsumeQueue=2000\nmaxMessageSize=8192\n' \
    "$S" >"$T/good.conf"
run gen -c "$T/good.conf" --topic T --count 20 --size 10 --set noSuchKeyAtAll=1
is "$rc" "0" "gen with a config file and an unknown key: exit 0"
has_err "^shmqctl: warning: .*noSuchKeyAtAll"
ok $? "the unknown key is warned about"
run verify -c "$T/good.conf"
is "$rc" "0" "the store is found through the config file"
run verify --config "$T/good.conf" --store "$T/elsewhere"
is "$rc" "1" "--store after -c overrides the file's storePathRootDir (no store there: exit 1)"

run dump --store "$T/nothing-here" $SMALL commitlog
is "$rc" "1" "dump of a missing store: exit 1"

echo "1..$n"
[ "$failed" -eq 0 ]
