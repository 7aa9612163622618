#!/bin/sh
# The man pages in docs/man/ cover the programs as they are built:
#   1. each page renders without a warning (groff -man -ww; skipped without groff);
#   2. shmqctl.1 has a subsection (.SS) for every command `shmqctl --help` lists,
#      each subsection names every option `shmqctl help COMMAND` shows for that
#      command, and every long option of `shmqctl --help` is in the page;
#   3. shmq-bench.1 has a tagged entry (.TP) for every mode and every option of
#      `shmq-bench --help`;
#   4. shmqd.8 has a tagged entry for every option of `shmqd --help`;
#   6. shmq-trace.8 has a tagged entry for every option of `shmq-trace --help`
#      (where shmq-trace is built);
#   7. shmq-controller.8 has a tagged entry for every option of
#      `shmq-controller --help` and for every key docs/controller.md lists;
#   5. broker.conf.5 has a `.TP` / `.B KEY=DEFAULT` entry for every key
#      `shmqd --print-config` prints, with the default it prints, and no such
#      entry for a key shmqd does not read.
# Each check names what is missing, so that a failure says what to add.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init man-pages

MAN="$SRC/docs/man"
BENCH="$BUILD/shmq-bench"
PAGES="shmqd.8 shmqctl.1 shmq-bench.1 shmq-trace.8 shmq-controller.8 broker.conf.5"

# plain PAGE: the page's source with the escapes that appear inside names undone
# (\- is a hyphen, \fB \fI \fR \fP change fonts, \& is nothing), made once.
plain() {
    [ -f "$T/$1.plain" ] ||
        sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' "$MAN/$1" >"$T/$1.plain" 2>/dev/null
    cat "$T/$1.plain"
}

# tag_words PAGE: every word of every .TP tag line (the line after .TP), without
# its macro (.B, .BR, .BI, ...), quotes, commas, brackets and bars.
tag_words() {
    plain "$1" | awk '
        prev == ".TP" {
            line = $0
            sub(/^\.[A-Za-z]+[ \t]*/, "", line)
            gsub(/"/, "", line)
            n = split(line, w, /[ \t,|\[\]]+/)
            for (i = 1; i <= n; i++) if (w[i] != "") print w[i]
        }
        { prev = $1 }'
}

# headings PAGE: the first word of every .SH and .SS heading.
headings() {
    plain "$1" | awk '$1 == ".SH" || $1 == ".SS" { gsub(/"/, "", $2); print $2 }'
}

# subsection PAGE NAME: the text of subsection .SS NAME, up to the next heading.
subsection() {
    plain "$1" | awk -v name="$2" '
        $1 == ".SH" || $1 == ".SS" { h = $2; gsub(/"/, "", h); inside = ($1 == ".SS" && h == name); next }
        inside'
}

# missing WANT HAVE: the lines of file WANT that are not lines of file HAVE, on one line.
missing() {
    LC_ALL=C sort -u "$1" >"$1.sorted"
    LC_ALL=C sort -u "$2" >"$2.sorted"
    LC_ALL=C comm -23 "$1.sorted" "$2.sorted" | tr '\n' ' ' | sed 's/ $//'
}

# long_options: the long options (--xxx) on stdin, one per line, sorted.
long_options() {
    grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | LC_ALL=C sort -u
}

absent=""
for p in $PAGES; do
    [ -f "$MAN/$p" ] || absent="$absent $p"
done
is "${absent# }" "" "every man page is in docs/man ($PAGES)"

# ---- 1. each page renders without a warning ------------------------------------------------
if command -v groff >/dev/null 2>&1; then
    for p in $PAGES; do
        [ -f "$MAN/$p" ] || continue
        groff -man -ww -z -Tutf8 "$MAN/$p" >"$T/groff-$p.err" 2>&1 && ! grep -q . "$T/groff-$p.err"
        ok $? "$p renders without a warning (groff -man -ww)" || diag "$T/groff-$p.err"
    done
else
    ok 0 "# SKIP groff not installed"
fi

# ---- 2. shmqctl.1 --------------------------------------------------------------------------
"$CTL" --help >"$T/ctl.help" 2>&1
ok $? "shmqctl --help exits 0" || diag "$T/ctl.help"
# Commands are the lines indented by two spaces that start with a name ("  or:" lines do not).
sed -n 's/^  \([a-z][a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p' "$T/ctl.help" >"$T/ctl.commands"
ncmd=$(wc -l <"$T/ctl.commands")
[ "$ncmd" -ge 10 ]
ok $? "shmqctl --help lists its commands ($ncmd found)" || diag "$T/ctl.help"

headings shmqctl.1 >"$T/ctl.headings"
is "$(missing "$T/ctl.commands" "$T/ctl.headings")" "" \
    "shmqctl.1 has a subsection for every command of shmqctl --help"

# Each command's own options (its usage, before the options every command takes).
absent=""
while read -r c; do
    case "$c" in help | version) continue ;; esac
    "$CTL" help "$c" >"$T/ctl.help.$c" 2>&1 || absent="$absent $c:(help failed)"
    sed '/^Options of every command/,$d' "$T/ctl.help.$c" | long_options >"$T/ctl.want.$c"
    subsection shmqctl.1 "$c" | long_options >"$T/ctl.have.$c"
    for o in $(missing "$T/ctl.want.$c" "$T/ctl.have.$c"); do
        absent="$absent $c:$o"
    done
done <"$T/ctl.commands"
is "${absent# }" "" "each command's subsection of shmqctl.1 names every option of shmqctl help COMMAND"

long_options <"$T/ctl.help" >"$T/ctl.options"
plain shmqctl.1 | long_options >"$T/ctl.page.options"
is "$(missing "$T/ctl.options" "$T/ctl.page.options")" "" \
    "every long option of shmqctl --help is in shmqctl.1"

# ---- 3. shmq-bench.1 -----------------------------------------------------------------------
"$BENCH" --help >"$T/bench.help" 2>&1
ok $? "shmq-bench --help exits 0" || diag "$T/bench.help"
sed -n '/^modes:/,/^options:/s/^  \([a-z][a-z0-9-]*\) .*/\1/p' "$T/bench.help" >"$T/bench.modes"
long_options <"$T/bench.help" >"$T/bench.options"
[ "$(wc -l <"$T/bench.modes")" -ge 5 ] && [ "$(wc -l <"$T/bench.options")" -ge 20 ]
ok $? "shmq-bench --help lists its modes and options ($(wc -l <"$T/bench.modes") modes, $(wc -l <"$T/bench.options") options)" ||
    diag "$T/bench.help"
tag_words shmq-bench.1 >"$T/bench.tags"
is "$(missing "$T/bench.modes" "$T/bench.tags")" "" \
    "shmq-bench.1 has an entry for every mode of shmq-bench --help"
is "$(missing "$T/bench.options" "$T/bench.tags")" "" \
    "shmq-bench.1 has an entry for every option of shmq-bench --help"

# ---- 4. shmqd.8 ----------------------------------------------------------------------------
"$SHMQD" --help >"$T/shmqd.help" 2>&1
ok $? "shmqd --help exits 0" || diag "$T/shmqd.help"
# Options: -x or --xxx after a blank or a '[' (not a hyphen inside a word).
grep -oE -- '(^|[[ ])--?[a-z][a-z0-9-]*' "$T/shmqd.help" | sed 's/^[[ ]//' | sort -u >"$T/shmqd.options"
[ "$(wc -l <"$T/shmqd.options")" -ge 4 ]
ok $? "shmqd --help names its options ($(tr '\n' ' ' <"$T/shmqd.options"))" || diag "$T/shmqd.help"
tag_words shmqd.8 >"$T/shmqd.tags"
is "$(missing "$T/shmqd.options" "$T/shmqd.tags")" "" \
    "shmqd.8 has an entry for every option of shmqd --help"

# ---- 6. shmq-trace.8 -----------------------------------------------------------------------
if [ -x "$BUILD/shmq-trace" ]; then
    "$BUILD/shmq-trace" --help >"$T/trace.help" 2>&1
    ok $? "shmq-trace --help exits 0" || diag "$T/trace.help"
    long_options <"$T/trace.help" >"$T/trace.options"
    tag_words shmq-trace.8 >"$T/trace.tags"
    is "$(missing "$T/trace.options" "$T/trace.tags")" "" \
        "shmq-trace.8 has an entry for every option of shmq-trace --help ($(wc -l <"$T/trace.options"))"
else
    ok 0 "# SKIP shmq-trace is not built"
    ok 0 "# SKIP shmq-trace is not built"
fi

# ---- 7. shmq-controller.8 ------------------------------------------------------------------
"$BUILD/shmq-controller" --help >"$T/controller.help" 2>&1
ok $? "shmq-controller --help exits 0" || diag "$T/controller.help"
grep -oE -- '(^|[[ ,])--?[a-z][a-z0-9-]*' "$T/controller.help" | sed 's/^[[ ,]//' | sort -u \
    >"$T/controller.options"
tag_words shmq-controller.8 | sed 's/=.*//' >"$T/controller.tags"
is "$(missing "$T/controller.options" "$T/controller.tags")" "" \
    "shmq-controller.8 has an entry for every option of shmq-controller --help ($(wc -l <"$T/controller.options"))"
# The keys: the first column of the key table of docs/controller.md ("| `key` |").
sed -n 's/^| `\([a-zA-Z]*\)` .*/\1/p' "$SRC/docs/controller.md" | sort -u >"$T/controller.keys"
[ "$(wc -l <"$T/controller.keys")" -ge 9 ]
ok $? "docs/controller.md lists the controller's keys ($(wc -l <"$T/controller.keys"))"
is "$(missing "$T/controller.keys" "$T/controller.tags")" "" \
    "shmq-controller.8 has an entry for every key of docs/controller.md"

# ---- 5. broker.conf.5 ----------------------------------------------------------------------
"$SHMQD" --print-config >"$T/print-config" 2>"$T/print-config.err"
ok $? "shmqd --print-config exits 0" || diag "$T/print-config.err"
nkeys=$(grep -c '^[A-Za-z0-9]*=' "$T/print-config")
[ "$nkeys" -ge 50 ]
ok $? "shmqd --print-config prints the keys ($nkeys)" || diag "$T/print-config"
# The entries: the line after .TP is `.B KEY=DEFAULT` (quoted when the default has blanks).
plain broker.conf.5 | awk '
    prev == ".TP" && $1 == ".B" && $0 ~ /=/ {
        line = $0
        sub(/^\.B[ \t]+/, "", line)
        if (line ~ /^".*"$/) line = substr(line, 2, length(line) - 2)
        print line
    }
    { prev = $1 }' >"$T/conf.entries"
# A key whose entry is missing is named; one whose entry shows another default is
# named with both values.
absent=$(awk -F= '
    NR == FNR { page[$1] = $0; next }
    page[$1] != $0 {
        printf "%s%s", sep, ($1 in page) ? $1 " (page: \"" page[$1] "\", shmqd: \"" $0 "\")" : $1
        sep = " "
    }' "$T/conf.entries" "$T/print-config")
is "$absent" "" "broker.conf.5 has a .TP entry KEY=DEFAULT for every key of shmqd --print-config"
sed 's/=.*//' "$T/conf.entries" >"$T/conf.keys"
sed 's/=.*//' "$T/print-config" >"$T/print-config.keys"
is "$(missing "$T/conf.keys" "$T/print-config.keys")" "" \
    "every KEY=DEFAULT entry of broker.conf.5 is a key shmqd reads"

done_testing
