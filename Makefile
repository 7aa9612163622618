# shmq — build, test and run.
#
#   make          build the library, daemons, tools and tests (gcc, -Werror)
#   make test     install missing packages, build, run the suite; then build
#                 with clang + AddressSanitizer/UndefinedBehaviorSanitizer and
#                 run the suite again
#   make deps     install the Debian packages shmq needs (as root)
#   make run      install missing packages, build, and run shmqd on ./data in
#                 the foreground (Ctrl-C stops it cleanly)
#   make format   apply clang-format
#
# BUILD selects the output directory, SAN=1 the sanitizer flags.

CC       ?= gcc
ifeq ($(origin CC),default)
CC       := gcc
endif
BUILD    ?= build
SAN      ?=

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-missing-field-initializers
ifeq ($(findstring clang,$(CC)),)
WARN     += -Wno-format-truncation
endif
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -fPIC -D_GNU_SOURCE -Iinclude -Ilibshm -Idaemons
LDLIBS   := -lisal -llz4 -lz -lzstd -ljansson -luv -lssl -lcrypto -lpthread -lm -lrt
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
endif

LIB_SRCS    := $(sort $(wildcard libshm/*/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TOOL_COMMON := $(sort $(wildcard tools/common/*.c))
TOOL_COMMON_OBJS := $(TOOL_COMMON:%.c=$(BUILD)/%.o)
CTL_SRCS    := $(sort $(wildcard tools/shmqctl/*.c))
CTL_OBJS    := $(CTL_SRCS:%.c=$(BUILD)/%.o)
WORKER_OBJ  := $(BUILD)/daemons/worker.o $(BUILD)/daemons/log.o
# shmqd is daemons/master*.c.  Each worker role ROLE (below) is built as
# shmq-ROLE (an underscore of the name a dash: ha_sender -> shmq-ha-sender)
# from daemons/ROLE.c and its parts daemons/ROLE_*.c, when ROLE.c exists.
MASTER_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard daemons/master*.c)))
WORKER_ROLES := writer flusher dispatcher indexer scheduler cleaner ha_sender ha_receiver metrics gateway ctrl_agent
DAEMON_ROLES := $(patsubst daemons/%.c,%,$(wildcard $(WORKER_ROLES:%=daemons/%.c)))
DAEMON_BINS := $(foreach r,$(DAEMON_ROLES),$(BUILD)/shmq-$(subst _,-,$(r))) $(if $(wildcard daemons/master.c),$(BUILD)/shmqd)
UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
TEST_HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
TEST_HELPER_BINS := $(TEST_HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)
# What several helpers share (tests/helpers/common/*.c), linked into each of them.
TEST_HELPER_COMMON := $(sort $(wildcard tests/helpers/common/*.c))
TEST_HELPER_COMMON_OBJS := $(TEST_HELPER_COMMON:%.c=$(BUILD)/%.o)
# Fault shims (LD_PRELOAD) for the flush-failure tests: built without sanitizers.
FAULT_SRCS  := $(sort $(wildcard tests/fault/*.c))
FAULT_LIBS  := $(FAULT_SRCS:tests/fault/%.c=$(BUILD)/tests/fault/lib%.so)

BINS := $(BUILD)/shmqctl $(DAEMON_BINS)
# shmq-controller: a controller group's member (daemons/controller*.c), on libraft; not a
# worker of shmqd.
CONTROLLER_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard daemons/controller*.c)))
CONTROLLER_BIN  := $(if $(CONTROLLER_OBJS),$(BUILD)/shmq-controller)
BINS += $(CONTROLLER_BIN)
# shmq-bench: the benchmark tool (tools/shmq-bench/*.c)
BENCH_SRCS  := $(sort $(wildcard tools/shmq-bench/*.c))
BENCH_OBJS  := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
BINS += $(if $(BENCH_SRCS),$(BUILD)/shmq-bench)

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang in their own
# directory whatever CC is: the library again with coverage and ASan+UBSan.
# `make all` builds them when clang has libFuzzer (tests/integration/fuzz_corpus.t
# runs each over its corpus); `make fuzz` fuzzes each for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_WORK    ?= $(FUZZ_BUILD)/work
FUZZ_RT      := $(wildcard $(shell $(FUZZ_CC) --print-file-name=libclang_rt.fuzzer-$(shell uname -m).a 2>/dev/null))
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
                -Wmissing-prototypes -Wno-missing-field-initializers -fPIC -D_GNU_SOURCE \
                -Iinclude -Ilibshm -Idaemons -Itests/fuzz $(FUZZ_SAN)
FUZZ_SRCS    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_TESTS_BINS := $(if $(FUZZ_RT),$(FUZZ_BINS))

.PHONY: all lib tools tests test check deps format format-check clean run run-master run-slave run-secret bench

all: lib tools tests bench

lib: $(BUILD)/libshmq.a $(BUILD)/libshmq.so
tools: $(BINS)
tests: $(UNIT_BINS) $(TEST_HELPER_BINS) $(FAULT_LIBS) $(FUZZ_TESTS_BINS)

# An object's .d names it both ways (relative to the tree and absolute), so that a build with
# BUILD given as an absolute path (tests/integration/install.t) and one with the usual relative
# BUILD both see its headers as prerequisites.
DEP_TARGETS = -MT $(abspath $@) -MT $(patsubst $(CURDIR)/%,%,$(abspath $@))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -MMD -MP $(DEP_TARGETS) -c $< -o $@

$(BUILD)/libshmq.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libshmq.so: $(LIB_OBJS)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libshmq.so.$(SOVERSION) -o $@ $^ $(LDLIBS)

$(BUILD)/shmqctl: $(CTL_OBJS) $(TOOL_COMMON_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(CTL_OBJS) $(TOOL_COMMON_OBJS) $(BUILD)/libshmq.a $(LDLIBS)

# shmq-bench: the benchmark tool
$(BUILD)/shmq-bench: $(BENCH_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJS) $(BUILD)/libshmq.a $(LDLIBS)

# shmq-trace: the USDT probes' tracer (libbpf), built when libbpf-dev, bpftool and
# clang's BPF target are here; optional otherwise (the store's probes need only
# sys/sdt.h, and are nops without it).
BPFTOOL    := $(firstword $(shell command -v bpftool 2>/dev/null) $(wildcard /usr/sbin/bpftool))
BPF_CLANG  ?= clang
BPF_ARCH   := $(subst x86_64,x86,$(subst aarch64,arm64,$(shell uname -m)))
TRACE_OK   := $(and $(BPFTOOL),$(wildcard /usr/include/bpf/usdt.bpf.h),$(filter bpf,$(shell \
                $(BPF_CLANG) -print-targets 2>/dev/null | awk '{print $$1}')))
TRACE_SRCS := $(sort $(wildcard tools/shmq-trace/*.c))
TRACE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out %.bpf.c,$(TRACE_SRCS)))
TRACE_BIN  := $(if $(TRACE_OK),$(if $(TRACE_SRCS),$(BUILD)/shmq-trace))
BINS += $(TRACE_BIN)
tools: $(TRACE_BIN)

$(BUILD)/tools/shmq-trace/shmq_trace.bpf.o: tools/shmq-trace/shmq_trace.bpf.c \
    tools/shmq-trace/trace_event.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) -O2 -g -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
	    -I/usr/include/$(shell $(BPF_CLANG) -print-multiarch 2>/dev/null) \
	    -Wall -Werror -c $< -o $@

$(BUILD)/tools/shmq-trace/shmq_trace.skel.h: $(BUILD)/tools/shmq-trace/shmq_trace.bpf.o
	$(BPFTOOL) gen skeleton $< name shmq_trace >$@.tmp && mv $@.tmp $@

$(BUILD)/tools/shmq-trace/main.o: $(BUILD)/tools/shmq-trace/shmq_trace.skel.h
$(BUILD)/tools/shmq-trace/main.o: CFLAGS += -I$(BUILD)/tools/shmq-trace

$(BUILD)/shmq-trace: $(TRACE_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(TRACE_OBJS) $(BUILD)/libshmq.a $(LDLIBS) -lbpf -lelf

# bench/floor: the minimal ring + mmap append that bench/compare-peers sets
# shmq against (ISA-L only, none of libshm).
FLOOR := $(if $(wildcard bench/floor.c),$(BUILD)/bench/floor)
bench: $(FLOOR)

$(BUILD)/bench/floor: $(BUILD)/bench/floor.o
	$(CC) $(LDFLAGS) -o $@ $< -lisal

# shmqd speaks systemd's notification protocol (init/shmqd.service) through libsystemd.
$(BUILD)/shmqd: $(MASTER_OBJS) $(WORKER_OBJ) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(MASTER_OBJS) $(WORKER_OBJ) $(BUILD)/libshmq.a $(LDLIBS) -lsystemd

$(BUILD)/shmq-controller: $(CONTROLLER_OBJS) $(BUILD)/daemons/log.o $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(CONTROLLER_OBJS) $(BUILD)/daemons/log.o $(BUILD)/libshmq.a $(LDLIBS) -lraft

define daemon_rule
$(BUILD)/shmq-$(subst _,-,$(1)): $(BUILD)/daemons/$(1).o $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard daemons/$(1)_*.c))) $(WORKER_OBJ) $(BUILD)/libshmq.a
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(BUILD)/libshmq.a $$(LDLIBS)
endef
$(foreach r,$(DAEMON_ROLES),$(eval $(call daemon_rule,$(r))))
# The metrics worker serves HTTP with libmicrohttpd.
$(BUILD)/shmq-metrics: LDLIBS += -lmicrohttpd

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libshmq.a $(LDLIBS) -lcmocka

$(BUILD)/tests/fault/lib%.so: tests/fault/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(TEST_HELPER_COMMON_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER_COMMON_OBJS) $(BUILD)/libshmq.a $(LDLIBS)

deps:
	@sh tools/install-deps.sh

# The sanitizer pass looks for memory and UB errors on every path; the
# campaign-sized counts (30 power cuts) run in the first pass.
test: deps
	$(MAKE) all
	sh tests/run.sh $(BUILD)
	$(MAKE) BUILD=build-san CC=clang SAN=1 all
	SHMQ_POWER_CUTS=8 SHMQ_POWER_ASYNC_CUTS=2 sh tests/run.sh build-san

check: test

# The long campaigns (need root and loop devices): the power-loss test with
# TORTURE_CUTS cuts under SYNC_FLUSH and a fifth as many under ASYNC_FLUSH, and
# 200 single-bit flips per metadata file kind, the corruption campaign (200
# damaged copies of each kind of store file; figures in
# $(BUILD)/corruption-figures.md), 10 rounds of kill -9 of a SYNC_MASTER's
# and its slave's whole stores under load, and 10 automatic failovers of a
# broker set in controller mode under a synchronous load (no acknowledged
# message twice on the final master, none a SYNC_MASTER acknowledged missing;
# those a promoted ASYNC_MASTER lost are counted); BUILD=build-san CC=clang
# SAN=1 runs them under the sanitizers.
TORTURE_CUTS ?= 300
.PHONY: torture
torture: all
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) SHMQ_POWER_CUTS=$(TORTURE_CUTS) \
	    SHMQ_POWER_ASYNC_CUTS=$$(( $(TORTURE_CUTS) / 5 )) prove -v tests/crash/power_loss.t
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) META_FLIPS=200 \
	    prove -v tests/integration/metadata_damage.t
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) perl tests/torture/corruption.pl \
	    --per-kind 200 --figures $(abspath $(BUILD))/corruption-figures.md
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) REPL_KILL_ROUNDS=10 \
	    prove -v tests/integration/replication_kill.t
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) FO_LOOP_ROUNDS=10 \
	    prove -v tests/integration/controller_failover_loop.t

# The broker in the foreground on ./data (RUN_STORE=DIR for another store).
# RUN_PROFILE=small (the default) keeps a new store small on disk: 64 MiB
# CommitLog segments and a 42 MB index file instead of RocketMQ's 1 GiB and
# 400 MB (an empty store then takes about 170 MB instead of 2.1 GB);
# RUN_PROFILE=production uses RocketMQ's sizes.  Keep one profile per store:
# the segment sizes are those the store was made with.
RUN_STORE   ?= ./data
RUN_PROFILE ?= small
RUN_SMALL   := --set mappedFileSizeCommitLog=67108864 --set mappedFileSizeConsumeQueue=600000 \
               --set maxHashSlotNum=500000 --set maxIndexNum=2000000 \
               --set mappedFileSizeTimerLog=16777216
RUN_SIZES   := $(if $(filter production,$(RUN_PROFILE)),,$(RUN_SMALL))
run: deps
	$(MAKE) all
	@echo
	@echo "shmq: starting shmqd on $(RUN_STORE); in another terminal:"
	@echo "    $(BUILD)/shmqctl send --store $(RUN_STORE) TopicTest \"hello\""
	@echo "    $(BUILD)/shmqctl consume --store $(RUN_STORE) TopicTest --group G"
	@echo "    $(BUILD)/shmqctl status --store $(RUN_STORE)"
	@echo "Ctrl-C (SIGINT) or SIGTERM stops it cleanly."
	@echo
	exec $(BUILD)/shmqd --store $(RUN_STORE) $(RUN_SIZES)

# A master and its slave on this machine (two terminals): run-master serves
# RUN_STORE with an HA link on port 10912, run-slave follows it on
# RUN_SLAVE_STORE; both use the secret file RUN_SECRET (made if missing).
RUN_SLAVE_STORE ?= ./data-slave
RUN_SECRET      ?= $(CURDIR)/ha.secret
run-secret:
	@test -s $(RUN_SECRET) || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >$(RUN_SECRET))
	@chmod 600 $(RUN_SECRET)

run-master: deps run-secret
	$(MAKE) all
	@echo
	@echo "shmq: the master on $(RUN_STORE), slaves connect to port 10912 (secret $(RUN_SECRET));"
	@echo "start its slave in another terminal with: make run-slave"
	@echo
	exec $(BUILD)/shmqd --store $(RUN_STORE) $(RUN_SIZES) --set haSecretFile=$(RUN_SECRET) \
	    --set haListenPort=10912

run-slave: deps run-secret
	$(MAKE) all
	@echo
	@echo "shmq: the slave on $(RUN_SLAVE_STORE), following 127.0.0.1:10912; in another terminal:"
	@echo "    $(BUILD)/shmqctl send --store $(RUN_STORE) TopicTest \"hello\""
	@echo "    $(BUILD)/shmqctl consume --store $(RUN_SLAVE_STORE) TopicTest --group G"
	@echo "    $(BUILD)/shmqctl status --store $(RUN_STORE)    # the slave, in sync or not"
	@echo
	exec $(BUILD)/shmqd --store $(RUN_SLAVE_STORE) $(RUN_SIZES) --set brokerRole=SLAVE --set brokerId=1 \
	    --set haSecretFile=$(RUN_SECRET) --set haMasterAddress=127.0.0.1:10912 \
	    --set listenPort=20911 --set haListenPort=20912

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

# ---- install ----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=staging]: shmqd and its workers in
# LIBEXECDIR (shmqd finds the workers next to itself) with SBINDIR/shmqd a
# link to it; shmqctl and shmq-bench in BINDIR (shmq-bench also finds shmqd next to
# itself: a link as well), shmq-trace (when built) and shmq-controller in SBINDIR; the library, its headers and shmq.pc for
# pkg-config; the systemd unit, sysusers and tmpfiles snippets; the man pages;
# the example broker.conf (never over an existing one).  SOVERSION moves whenever a
# public struct of include/shmq changes layout (1: shmq_msg_view_t gained the
# compression fields, and shmq_pull_result_t holds an array of them).
VERSION     := 0.2.0
SOVERSION   := 1
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBDIR      ?= $(PREFIX)/lib
LIBEXECDIR  ?= $(PREFIX)/libexec/shmq
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MAN_PAGES   := $(sort $(wildcard docs/man/*.[1-8]))
INSTALL_DAEMONS := $(notdir $(DAEMON_BINS))

.PHONY: install uninstall
install: lib tools
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(INCLUDEDIR)/shmq $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/shmq
	install -m 0755 $(DAEMON_BINS) $(DESTDIR)$(LIBEXECDIR)/
	install -m 0755 $(BUILD)/shmq-bench $(DESTDIR)$(LIBEXECDIR)/
	ln -sfn $(shell realpath -m --relative-to=$(SBINDIR) $(LIBEXECDIR)/shmqd) $(DESTDIR)$(SBINDIR)/shmqd
	ln -sfn $(shell realpath -m --relative-to=$(BINDIR) $(LIBEXECDIR)/shmq-bench) \
	    $(DESTDIR)$(BINDIR)/shmq-bench
	install -m 0755 $(BUILD)/shmqctl $(DESTDIR)$(BINDIR)/
	$(if $(TRACE_BIN),install -m 0755 $(TRACE_BIN) $(DESTDIR)$(SBINDIR)/)
	$(if $(CONTROLLER_BIN),install -m 0755 $(CONTROLLER_BIN) $(DESTDIR)$(SBINDIR)/)
	install -m 0644 $(BUILD)/libshmq.a $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(BUILD)/libshmq.so $(DESTDIR)$(LIBDIR)/libshmq.so.$(VERSION)
	ln -sfn libshmq.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libshmq.so.$(SOVERSION)
	ln -sfn libshmq.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libshmq.so
	install -m 0644 include/shmq/*.h $(DESTDIR)$(INCLUDEDIR)/shmq/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LDLIBS)|' shmq.pc.in \
	    >$(DESTDIR)$(PKGCONFIGDIR)/shmq.pc
	sed -e 's|@SBINDIR@|$(SBINDIR)|' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|' init/shmqd.service.in \
	    >$(DESTDIR)$(UNITDIR)/shmqd.service
	install -m 0644 init/shmq.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/shmq.conf
	install -m 0644 init/shmq.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/shmq.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/shmq/broker.conf || \
	    install -m 0644 init/broker.conf $(DESTDIR)$(SYSCONFDIR)/shmq/broker.conf
	$(foreach m,$(MAN_PAGES),install -D -m 0644 $(m) \
	    $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) &&) true

# Removes what install put there, but not broker.conf (an operator's edits) nor any store.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(LIBEXECDIR)/,$(INSTALL_DAEMONS) shmq-bench)
	-rmdir $(DESTDIR)$(LIBEXECDIR)
	rm -f $(DESTDIR)$(SBINDIR)/shmqd $(DESTDIR)$(SBINDIR)/shmq-trace $(DESTDIR)$(BINDIR)/shmq-bench \
	    $(DESTDIR)$(SBINDIR)/shmq-controller \
	    $(DESTDIR)$(BINDIR)/shmqctl
	rm -f $(DESTDIR)$(LIBDIR)/libshmq.a $(DESTDIR)$(LIBDIR)/libshmq.so \
	    $(DESTDIR)$(LIBDIR)/libshmq.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libshmq.so.$(VERSION)
	rm -rf $(DESTDIR)$(INCLUDEDIR)/shmq
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/shmq.pc $(DESTDIR)$(UNITDIR)/shmqd.service \
	    $(DESTDIR)$(SYSUSERSDIR)/shmq.conf $(DESTDIR)$(TMPFILESDIR)/shmq.conf
	rm -f $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))

# ---- fuzzing --------------------------------------------------------------
$(FUZZ_BUILD)/libshm/%.o: libshm/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP $(DEP_TARGETS) -c $< -o $@

$(FUZZ_BUILD)/libshmq.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP $(DEP_TARGETS) -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libshmq.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_BUILD)/libshmq.a $(LDLIBS)

# No object is deleted as an intermediate (the unit tests' and the fuzzers' are made by chained
# pattern rules): the next build, with BUILD relative or absolute, finds every one up to date.
.SECONDARY:

# The seed corpora made by the store's own writers (tests/fuzz/seeds.c).
$(FUZZ_BUILD)/fuzz_seeds: $(FUZZ_BUILD)/tests/fuzz/seeds.o $(FUZZ_BUILD)/libshmq.a
	$(FUZZ_CC) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -o $@ $< $(FUZZ_BUILD)/libshmq.a $(LDLIBS)

.PHONY: fuzz-seeds
fuzz-seeds: $(FUZZ_BUILD)/fuzz_seeds
	@mkdir -p $(FUZZ_WORK)
	$(FUZZ_BUILD)/fuzz_seeds tests/fuzz/corpus $(abspath $(FUZZ_WORK))

# Fuzz each target for FUZZ_SECONDS from its corpus; new inputs and crash
# artifacts go to FUZZ_WORK (never into the tree).  FUZZ_TARGETS=x limits it.
.PHONY: fuzz fuzz-build fuzz-corpus
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_WORK)/$$t $(FUZZ_WORK)/artifacts; \
	    echo "shmq: fuzzing $$t for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_WORK)/artifacts/$$t- \
	        $(FUZZ_WORK)/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Each harness once over its corpus (what make test runs as fuzz_corpus.t).
fuzz-corpus: fuzz-build
	SHMQ_FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) sh tests/fuzz/run_corpus.sh

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
