#!/bin/sh
# perf_cost.t: shmq's instructions per message do not grow more than 25 %
# over the figures committed by bench/cost --update: bench/results/cost-128.json
# (one producer sending one message at a time, --inflight 1) and
# cost-128-inflight64.json (64 in flight).  bench/cost counts them with
# callgrind on 20,000 messages of 128 B (instruction counts, not time: the
# check holds on a loaded machine), and, in the first load, the consumer's
# cost of a backlog read; each run must have delivered every message (the
# store's counters moved by the expected amount), so that it cannot pass by
# measuring nothing.  20,000 messages give the same figures per message as
# the committed 100,000 within a few per cent (docs/performance.md).
#
# The compared total is the committed one's kind: the processes whose work
# follows the messages (producer, writer, flusher, dispatcher, indexer) as
# measured, plus the scheduler and the cleaner at what one wake-up of theirs
# costs now times how often they were woken per message in the committed run
# (they have nothing to do per message in this load; how often they are
# woken depends on timing, so it is held at the committed rate).
#
# Skipped without valgrind, and for a sanitizer build (ASan does not run
# under valgrind).  PERF_COST_COUNT sets the message count.
SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SHMQ_BUILD:-/work/main/build}
. "$SRC/tests/helpers/tap.sh"

skip_all() {
    echo "1..0 # SKIP $1"
    exit 0
}
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
    skip_all "valgrind (callgrind) is not installed"
fi
case "${BUILD%/}" in
*-san) skip_all "sanitizer build $BUILD: ASan does not run under valgrind" ;;
esac
if command -v nm >/dev/null 2>&1 && nm "$BUILD/shmq-writer" 2>/dev/null | grep -q '__asan_init'; then
    skip_all "$BUILD/shmq-writer is built with AddressSanitizer, which does not run under valgrind"
fi
COUNT=${PERF_COST_COUNT:-20000}
T=$(mktemp -d /tmp/shmq-perf-cost.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM

# check NAME REF COUNT: compare $T/NAME.json with the committed REF, one TAP line a check.
check() {
    perl -MJSON::PP -e '
    my ($ref_f, $got_f, $count, $name) = @ARGV;
    sub load { local $/; open(my $f, "<", $_[0]) or return undef;
        return eval { JSON::PP->new->decode(<$f>) } }
    my ($ref, $got) = (load($ref_f), load($got_f));
    unless ($got && $got->{per_message}) { print "not ok\t$name: bench/cost printed its figures\n"; exit }
    my @res;
    sub check { push @res, [$_[0] ? "ok" : "not ok", $_[1]] }
    my $d = $got->{delivered};
    check($got->{producer_result}{msgs} == $count && $got->{producer_result}{errors} == 0,
        "the producer had all $count sends acknowledged, none failed");
    check($d->{messages_in} == $count, "the store took $count messages (messages_in moved by "
        . "$d->{messages_in})");
    check($d->{wrote} >= $count * 228 && $d->{dispatched} == $d->{wrote}
        && $d->{indexed} == $d->{wrote},
        "the CommitLog grew by $count records and all were dispatched and indexed "
        . "(wrote +$d->{wrote}, dispatched +$d->{dispatched}, indexed +$d->{indexed})");
    my $pm = $got->{per_message};
    check(!grep({ ($pm->{$_} // 0) <= 0 } qw(producer writer dispatcher indexer)),
        "instructions were counted in the producer, the writer, the dispatcher and the indexer");
    my $like = $ref->{size} == $got->{size} && $ref->{flush} eq $got->{flush}
        && $ref->{inflight} == $got->{inflight}
        && ($ref->{idle_excluded} ? 1 : 0) == ($got->{idle_excluded} ? 1 : 0);
    check($like, "the committed figures are of the same load ($got->{size} B, $got->{flush}, "
        . "--inflight $got->{inflight})");
    my $rp = $ref->{per_message};
    my $lim = 1.25;
    check($pm->{message_driven} <= $lim * $rp->{message_driven},
        sprintf("message-driven processes: %.0f instructions per message, committed %.0f "
            . "(at most +25 %%)", $pm->{message_driven}, $rp->{message_driven}));
    my $norm = $pm->{message_driven};
    my $ref_total = $rp->{message_driven};
    for my $k (qw(scheduler cleaner)) {
        my ($g, $r) = ($got->{work_calls}{$k}, $ref->{work_calls}{$k});
        next unless $g && $r;
        $norm += $g->{instructions_per_call} * $r->{per_message};
        $ref_total += $r->{instructions_per_call} * $r->{per_message};
    }
    check($norm <= $lim * $ref_total,
        sprintf("total: %.0f instructions per message, committed %.0f (at most +25 %%; the "
            . "scheduler and the cleaner at the committed wake-ups per message)", $norm,
            $ref_total));
    my ($gc, $rc) = ($got->{consumer}, $ref->{consumer});
    for my $k ($gc ? qw(check nocheck) : ()) {
        check($gc && $rc && $gc->{"per_message_$k"} <= $lim * $rc->{"per_message_$k"},
            sprintf("consumer backlog read, CRC %s: %.0f instructions per message, committed "
                . "%.0f (at most +25 %%)", $k eq "check" ? "checked" : "not checked",
                $gc ? $gc->{"per_message_$k"} : -1, $rc ? $rc->{"per_message_$k"} : -1));
    }
    print "$_->[0]\t$name: $_->[1]\n" for @res;
    print "#\t$name: process      measured  committed  (per message)\n";
    for my $k (qw(producer writer flusher dispatcher indexer scheduler cleaner total)) {
        printf "#\t%-10s %10.0f %10.0f\n", $k, $pm->{$k} // 0, $rp->{$k} // 0;
    }
    my ($gs, $rs) = ($got->{work_calls}{scheduler} // {}, $ref->{work_calls}{scheduler} // {});
    printf "#\tscheduler woken %.2f times per message (committed %.2f), %.0f instructions a "
        . "wake-up (committed %.0f)\n", $gs->{per_message} // 0, $rs->{per_message} // 0,
        $gs->{instructions_per_call} // 0, $rs->{instructions_per_call} // 0;
' "$2" "$T/$1.json" "$3" "$1" >"$T/$1.checks" 2>"$T/$1.checks.err"
    [ -s "$T/$1.checks" ] || { ok 1 "$1: the figures could be compared" && diag "$T/$1.checks.err"; }
    while IFS="	" read -r st what; do
        case "$st" in
        ok) ok 0 "$what" ;;
        "not ok") ok 1 "$what" ;;
        "#") echo "# $what" ;;
        esac
    done <"$T/$1.checks"
    grep -q '^not ok' "$T/$1.checks" && grep '^#' "$T/$1.checks" | tr '\t' ' ' >&2
    return 0
}

# measure NAME INFLIGHT REF [bench/cost options]: one bench/cost run, then its checks.
measure() {
    local name=$1 inflight=$2 ref=$3
    shift 3
    if [ ! -f "$ref" ]; then
        echo "Bail out! $ref missing (bench/cost --update writes it)"
        exit 1
    fi
    perl "$SRC/bench/cost" --build "$BUILD" --count "$COUNT" --size 128 --flush async \
        --inflight "$inflight" --no-syscalls --json --tmpdir "$T" "$@" >"$T/$name.json" \
        2>"$T/$name.err"
    ok $? "$name: bench/cost measured $COUNT messages of 128 B, --inflight $inflight, under callgrind" ||
        diag "$T/$name.err"
    check "$name" "$ref" "$COUNT"
}

# One at a time (every message a round trip through every process), with the consumer's
# backlog read; then 64 in flight (the batched load), without it.
measure one-at-a-time 1 "$SRC/bench/results/cost-128.json"
measure inflight64 64 "$SRC/bench/results/cost-128-inflight64.json" --no-consumer
echo "1..$n"
[ "$failed" -eq 0 ]
