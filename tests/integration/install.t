#!/bin/sh
# make install / make uninstall into a staging directory (DESTDIR):
#   - the programs, library, headers, pkg-config file, unit, sysusers and
#     tmpfiles snippets, man pages and the example broker.conf land where
#     the Makefile says; the installed shmqd finds its workers;
#   - a program built with `pkg-config --cflags --libs shmq` against the
#     staged install sends a message to a store the installed shmqd runs;
#   - the example broker.conf names every key shmqd reads, with its default;
#   - a second build is a no-op (make -q: nothing is rebuilt);
#   - make uninstall removes everything but the operator's broker.conf.
# TAP output; exits non-zero if any test fails.

SRC=${SHMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/helpers/broker.sh"
broker_init install

if ! command -v pkg-config >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    echo "1..0 # SKIP make or pkg-config not installed"
    exit 0
fi

# ---- a second build does nothing -----------------------------------------------------------
make -q -C "$SRC" BUILD="$BUILD" all >"$T/make-q.out" 2>&1
ok $? "make all after a build has nothing to do (no object is rebuilt)" || diag "$T/make-q.out"
# An object's .d names it absolute and relative to the tree, so that a build with either form
# of BUILD (this test's absolute, the usual relative) rebuilds it when one of its headers
# changes; a .d written by one form only left the other with no header prerequisites.
rel=${BUILD#"$SRC"/}
head -n 1 "$BUILD/daemons/writer.d" | grep -q "^$BUILD/daemons/writer.o $rel/daemons/writer.o:"
ok $? "writer.o's dependency file names it both ways ($rel)" ||
    diag "$BUILD/daemons/writer.d"

# ---- install -------------------------------------------------------------------------------
D="$T/root"
P=/opt/shmq
make -C "$SRC" BUILD="$BUILD" DESTDIR="$D" PREFIX=$P install >"$T/install.out" 2>&1
ok $? "make install DESTDIR=... PREFIX=$P" || diag "$T/install.out"
missing=""
for f in sbin/shmqd sbin/shmq-controller bin/shmqctl bin/shmq-bench libexec/shmq/shmqd libexec/shmq/shmq-writer \
    libexec/shmq/shmq-flusher libexec/shmq/shmq-dispatcher libexec/shmq/shmq-indexer \
    lib/libshmq.a lib/libshmq.so lib/libshmq.so.1 include/shmq/producer.h \
    include/shmq/consumer.h lib/pkgconfig/shmq.pc lib/systemd/system/shmqd.service \
    lib/sysusers.d/shmq.conf lib/tmpfiles.d/shmq.conf etc/shmq/broker.conf; do
    [ -e "$D$P/$f" ] || missing="$missing $f"
done
is "$missing" "" "every installed file is in place"
missing=""
for m in "$SRC"/docs/man/*.[1-8]; do
    [ -e "$m" ] || continue
    sec=${m##*.}
    [ -e "$D$P/share/man/man$sec/$(basename "$m")" ] || missing="$missing $(basename "$m")"
done
is "$missing" "" "every man page is installed in its section"
grep -q "^ExecStart=$P/sbin/shmqd -c $P/etc/shmq/broker.conf\$" "$D$P/lib/systemd/system/shmqd.service"
ok $? "the installed unit runs the installed shmqd with the installed broker.conf"

# ---- the example broker.conf ---------------------------------------------------------------
"$BUILD/shmqd" --print-config >"$T/defaults" 2>"$T/defaults.err"
ok $? "shmqd --print-config" || diag "$T/defaults.err"
# Every key: a line KEY=DEFAULT, commented out or not (storePathRootDir set for the service).
bad=$(while IFS='=' read -r k v; do
    [ "$k" = storePathRootDir ] && continue
    grep -qxF "#$k=$v" "$SRC/init/broker.conf" || grep -qxF "$k=$v" "$SRC/init/broker.conf" ||
        printf '%s ' "$k"
done <"$T/defaults")
is "$bad" "" "init/broker.conf names every key with its default"
"$BUILD/shmqd" -c "$SRC/init/broker.conf" --print-config >"$T/example" 2>"$T/example.err"
ok $? "shmqd accepts the example broker.conf" || diag "$T/example.err"
grep -qx "storePathRootDir=/var/lib/shmq/store" "$T/example"
ok $? "the example's store is the unit's state directory"

# ---- a program built with pkg-config -------------------------------------------------------
cat >"$T/hello.c" <<'EOF'
#include <shmq/producer.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    shmq_producer_t *p;
    int rc = shmq_producer_open(argv[1], NULL, &p);
    if (rc < 0) {
        fprintf(stderr, "open: %s\n", shmq_strerror(rc));
        return 1;
    }
    shmq_message_t m;
    shmq_message_init(&m, "TopicInstall", argv[2], strlen(argv[2]));
    shmq_send_result_t res;
    rc = shmq_send(p, &m, &res);
    shmq_producer_close(p);
    if (rc < 0 || res.status != SHMQ_SEND_OK) {
        fprintf(stderr, "send: %s\n", rc < 0 ? shmq_strerror(rc) : "not SEND_OK");
        return 1;
    }
    printf("sent %s\n", argv[2]);
    return argc > 3;
}
EOF
export PKG_CONFIG_PATH="$D$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D"
flags=$(pkg-config --cflags --libs shmq 2>"$T/pc.err")
ok $? "pkg-config finds shmq ($flags)" || diag "$T/pc.err"
# A sanitizer build's library needs the sanitizer runtime in the program too.
SANFLAGS=""
if nm "$BUILD/shmqd" 2>/dev/null | grep -q __asan_init; then
    SANFLAGS="-fsanitize=address,undefined"
fi
# shellcheck disable=SC2086
${CC:-cc} $SANFLAGS -o "$T/hello" "$T/hello.c" $flags -Wl,-rpath,"$D$P/lib" >"$T/cc.err" 2>&1
ok $? "a program builds with \`pkg-config --cflags --libs shmq\`" || diag "$T/cc.err"
SHMQD="$D$P/sbin/shmqd"
start_broker
ok $? "the installed shmqd starts a store and its workers" || diag "$T/shmqd.log"
"$T/hello" "$STORE" "hello-install" >"$T/hello.out" 2>"$T/hello.err"
ok $? "the program sends a message" || diag "$T/hello.err"
"$CTL" consume --store "$STORE" TopicInstall --group G --count 1 --timeout 10000 >"$T/c.out" 2>&1
grep -q "hello-install" "$T/c.out"
ok $? "the message is consumed" || diag "$T/c.out"
stop_broker
ok $? "the installed shmqd stops cleanly (exit $STOP_RC)" || diag "$T/shmqd.log"

# ---- uninstall -----------------------------------------------------------------------------
echo "# edited" >>"$D$P/etc/shmq/broker.conf"
make -C "$SRC" BUILD="$BUILD" DESTDIR="$D" PREFIX=$P install >"$T/install2.out" 2>&1
tail -n 1 "$D$P/etc/shmq/broker.conf" | grep -q "^# edited$"
ok $? "a second install keeps the operator's broker.conf" || diag "$T/install2.out"
make -C "$SRC" BUILD="$BUILD" DESTDIR="$D" PREFIX=$P uninstall >"$T/uninstall.out" 2>&1
ok $? "make uninstall" || diag "$T/uninstall.out"
left=$(cd "$D" && find . -type f -o -type l | sort | tr '\n' ' ')
is "$left" "./opt/shmq/etc/shmq/broker.conf " "only the operator's broker.conf is left"

done_testing
