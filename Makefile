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
LDLIBS   := -lisal -ljansson -lpthread -lm -lrt
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
endif

LIB_SRCS    := $(sort $(wildcard libshm/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TOOL_COMMON := $(sort $(wildcard tools/common/*.c))
TOOL_COMMON_OBJS := $(TOOL_COMMON:%.c=$(BUILD)/%.o)
CTL_SRCS    := $(sort $(wildcard tools/shmqctl/*.c))
CTL_OBJS    := $(CTL_SRCS:%.c=$(BUILD)/%.o)
WORKER_OBJ  := $(BUILD)/daemons/worker.o
DAEMON_ROLES := $(patsubst daemons/%.c,%,$(filter-out daemons/worker.c daemons/master.c,$(wildcard daemons/*.c)))
DAEMON_BINS := $(DAEMON_ROLES:%=$(BUILD)/shmq-%) $(if $(wildcard daemons/master.c),$(BUILD)/shmqd)
UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
TEST_HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
TEST_HELPER_BINS := $(TEST_HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)
# Fault shims (LD_PRELOAD) for the flush-failure tests: built without sanitizers.
FAULT_SRCS  := $(sort $(wildcard tests/fault/*.c))
FAULT_LIBS  := $(FAULT_SRCS:tests/fault/%.c=$(BUILD)/tests/fault/lib%.so)

BINS := $(BUILD)/shmqctl $(DAEMON_BINS)
# shmq-bench: the benchmark tool (tools/shmq-bench/*.c)
BENCH_SRCS  := $(sort $(wildcard tools/shmq-bench/*.c))
BENCH_OBJS  := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
BINS += $(if $(BENCH_SRCS),$(BUILD)/shmq-bench)

.PHONY: all lib tools tests test check deps format format-check clean run

all: lib tools tests

lib: $(BUILD)/libshmq.a $(BUILD)/libshmq.so
tools: $(BINS)
tests: $(UNIT_BINS) $(TEST_HELPER_BINS) $(FAULT_LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libshmq.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libshmq.so: $(LIB_OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/shmqctl: $(CTL_OBJS) $(TOOL_COMMON_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(CTL_OBJS) $(TOOL_COMMON_OBJS) $(BUILD)/libshmq.a $(LDLIBS)

# shmq-bench (an explicit rule: it wins over the shmq-% daemon pattern)
$(BUILD)/shmq-bench: $(BENCH_OBJS) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJS) $(BUILD)/libshmq.a $(LDLIBS)

$(BUILD)/shmqd: $(BUILD)/daemons/master.o $(WORKER_OBJ) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/daemons/master.o $(WORKER_OBJ) $(BUILD)/libshmq.a $(LDLIBS)

$(BUILD)/shmq-%: $(BUILD)/daemons/%.o $(WORKER_OBJ) $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $< $(WORKER_OBJ) $(BUILD)/libshmq.a $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libshmq.a $(LDLIBS) -lcmocka

$(BUILD)/tests/fault/lib%.so: tests/fault/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

$(BUILD)/tests/helpers/%: $(BUILD)/tests/helpers/%.o $(BUILD)/libshmq.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libshmq.a $(LDLIBS)

deps:
	@sh tools/install-deps.sh

test: deps
	$(MAKE) all
	sh tests/run.sh $(BUILD)
	$(MAKE) BUILD=build-san CC=clang SAN=1 all
	sh tests/run.sh build-san

check: test

# The long campaigns (need root and loop devices): the power-loss test with
# TORTURE_CUTS cuts under SYNC_FLUSH and a fifth as many under ASYNC_FLUSH, and
# 200 single-bit flips per metadata file kind; BUILD=build-san CC=clang SAN=1
# runs them under the sanitizers.
TORTURE_CUTS ?= 300
.PHONY: torture
torture: all
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) SHMQ_POWER_CUTS=$(TORTURE_CUTS) \
	    SHMQ_POWER_ASYNC_CUTS=$$(( $(TORTURE_CUTS) / 5 )) prove -v tests/crash/power_loss.t
	SHMQ_BUILD=$(abspath $(BUILD)) SHMQ_SRC=$(CURDIR) META_FLIPS=200 \
	    prove -v tests/integration/metadata_damage.t

# The broker in the foreground on ./data (RUN_STORE=DIR for another store).
RUN_STORE ?= ./data
run: deps
	$(MAKE) all
	@echo
	@echo "shmq: starting shmqd on $(RUN_STORE); in another terminal:"
	@echo "    $(BUILD)/shmqctl send --store $(RUN_STORE) TopicTest \"hello\""
	@echo "    $(BUILD)/shmqctl consume --store $(RUN_STORE) TopicTest --group G"
	@echo "    $(BUILD)/shmqctl status --store $(RUN_STORE)"
	@echo "Ctrl-C (SIGINT) or SIGTERM stops it cleanly."
	@echo
	exec $(BUILD)/shmqd --store $(RUN_STORE)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
