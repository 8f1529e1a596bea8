# kv — every build, test, bench and install target.
#
#   make            build/libkv.a, build/libkv.so,
#                   build/bin/{kv,kvbench,kvdemo,kvcompact,kvdump,kvcheck}
#   make run        install missing Debian packages, build, run the demo
#   make test       replay the fuzz corpora, then the CUnit suite, two of its suites
#                   under signal storms, then the same
#                   suite under ASan+UBSan (the CUnit run summary is printed last)
#   make check-layers  no file of the library includes a layer above its own
#   make test-unit  the CUnit suite only (regular build)
#   make test-signals  the property, concurrency and refresh suites under signal storms
#   make test-asan  the CUnit suite built with -fsanitize=address,undefined and KV_DEBUG
#   make test-tsan  the threaded suites under ThreadSanitizer
#   make test-valgrind  the CUnit suite (KV_TEST_QUICK=1) under valgrind memcheck
#   make fuzz       every libFuzzer harness (clang, ASan+UBSan), build/fuzz/<name>_fuzzer
#   make fuzz-smoke each harness for FUZZ_SMOKE_SECONDS (10) on its corpus: ~60 s
#   make fuzz-replay  the harnesses as plain programs (cc, ASan+UBSan) over
#                   fuzz/corpus/<name>/: every saved input is a regression test
#   make fuzz-run FUZZER=<name> [FUZZ_TIME=1800] [FUZZ_RUNS=n]  a campaign (nice 19,
#                   -jobs=1) in build/fuzz/work/<name>; make fuzz-merge folds it in
#   make fuzz-corpus  regenerate seeds from real stores and merge them into fuzz/corpus
#   make bench      a short kvbench run
#   make bench-report  docs/BENCHMARKS.md's table and plots, regenerated (1M keys, 3
#                   interleaved rounds; ~20 min, on a quiet machine) in bench-results/
#   make bench-peers  install the peers' packages (bench/deps: LevelDB, RocksDB, LMDB,
#                   Tkrzw, gnuplot), build build/bin/peerbench, run it at 100,000 keys
#   make lz4probe   build/bin/lz4probe: the measurement behind compress_min_bytes
#   make install    PREFIX=/usr/local DESTDIR= : library, header, kv.pc, tools, man pages
#   make debug      everything and kvtest with -O0 -g and KV_DEBUG (KV_ASSERT on), in
#                   build/debug
#   make clean
#
# Build products live in build/ (or BUILD=...); sources never mix with objects.

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man

OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wcast-qual -Wpointer-arith -Wwrite-strings -Wundef -Wformat=2 \
           -Wvla -Wno-unused-parameter
CPPFLAGS_KV := -D_GNU_SOURCE -Iengine -Iwal $(EXTRA_CPPFLAGS)
# -fvisibility=hidden: libkv.so exports only what kv.h marks KV_API (tests/test_abi.c).
CFLAGS_KV   := -std=c11 -fPIC -fvisibility=hidden -pthread $(OPT) $(WARN) $(SAN) $(EXTRA_CFLAGS)
LDLIBS_KV   := -luring -lisal -lxxhash -llz4 -lpthread
LDFLAGS_KV  := -pthread $(SAN) $(EXTRA_LDFLAGS)

# The library is engine/'s layers (engine/README.md) and wal/; engine/fsck/, the code
# only the tools use (inspect, check, repair), goes to an archive of its own that the
# tools, the tests and the fuzzers link, never into libkv.so.
LAYERS  := base format io store db
LIB_SRC := $(foreach l,$(LAYERS),$(wildcard engine/$(l)/*.c)) $(wildcard wal/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
FSCK_SRC := $(wildcard engine/fsck/*.c)
FSCK_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(FSCK_SRC))
FSCK_LIB := $(BUILD)/libkvfsck.a
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC))

TOOLS   := $(BUILD)/bin/kv $(BUILD)/bin/kvbench $(BUILD)/bin/kvdemo $(BUILD)/bin/kvcompact \
           $(BUILD)/bin/kvdump $(BUILD)/bin/kvcheck $(BUILD)/bin/peerbench
# The tools make install installs (kvdemo only serves make run), and every man page.
INSTALL_TOOLS := $(BUILD)/bin/kv $(BUILD)/bin/kvbench $(BUILD)/bin/kvcompact $(BUILD)/bin/kvdump \
                 $(BUILD)/bin/kvcheck
# peerbench is not installed (it links the peers' libraries), nor its page.
MAN1    := $(filter-out docs/man/peerbench.1,$(wildcard docs/man/*.1))
MAN3    := $(wildcard docs/man/*.3)

.PHONY: all run deps test bench-peers bench-report check-layers test-unit test-signals test-asan test-clang test-tsan test-valgrind bench lz4probe install \
        uninstall debug clean fuzz fuzz-bins fuzz-smoke fuzz-replay fuzz-replay-bins fuzz-run \
        fuzz-merge fuzz-corpus
all: $(BUILD)/libkv.a $(BUILD)/libkv.so $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_KV) $(CFLAGS_KV) -MMD -MP -c $< -o $@

$(BUILD)/libkv.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FSCK_LIB): $(FSCK_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The soname: libkv.so.1 since kv_options and kv_stats carry their size (kv.h, "The
# ABI"). build/libkv.so.1 links to it, for the programs linked against it
# (kv-abi-old) to run from the build tree.
SONAME  := libkv.so.1
$(BUILD)/libkv.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)
	ln -sf libkv.so $(BUILD)/$(SONAME)

# tools/dumpfmt.c: the dump format (kvdump writes it, kv load reads it) and the
# escaping of keys and values every tool prints. tools/forensic.c: kvdump --all and
# kvdump FILE, over engine/fsck/inspect.h. tools/json.c: the one JSON string writer
# (every --json output, kvbench's included). tools/progress.c: the one progress line.
$(BUILD)/bin/kv: $(BUILD)/obj/tools/kv.o $(BUILD)/obj/tools/dumpfmt.o $(BUILD)/obj/tools/json.o \
                $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvdump: $(BUILD)/obj/tools/kvdump.o $(BUILD)/obj/tools/forensic.o \
                    $(BUILD)/obj/tools/dumpfmt.o $(BUILD)/obj/tools/json.o \
                    $(BUILD)/obj/tools/progress.o $(FSCK_LIB) $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvcompact: $(BUILD)/obj/tools/kvcompact.o $(BUILD)/obj/tools/progress.o \
                       $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvcheck: $(BUILD)/obj/tools/kvcheck.o $(BUILD)/obj/tools/json.o \
                     $(BUILD)/obj/tools/progress.o $(FSCK_LIB) $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvdemo: $(BUILD)/obj/tools/kvdemo.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvbench: $(BUILD)/obj/bench/kvbench.o $(BUILD)/obj/tools/json.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV) -lm

# peerbench: kv beside LevelDB, RocksDB, LMDB and Tkrzw. Each peer whose header
# compiles (its Debian -dev package: bench/deps) is built in with -DPEER_HAVE_<NAME>
# and linked; the others are compiled out, so peerbench builds on any machine (kv
# alone at least). The flags go to build/peerbench.flags, rewritten only when they
# change, so installing a package rebuilds peerbench.o.
# PEERS: the peers to look for (make PEERS= builds peerbench with kv alone).
PEERS ?= leveldb rocksdb lmdb tkrzw
peer_has = $(if $(filter $(1),$(PEERS)),$(shell printf '#include <%s>\n' $(2) \
               | $(CC) -E -x c - >/dev/null 2>&1 && echo y))
PEER_CPPFLAGS :=
PEER_LIBS     :=
ifeq ($(call peer_has,leveldb,leveldb/c.h),y)
PEER_CPPFLAGS += -DPEER_HAVE_LEVELDB
PEER_LIBS     += -lleveldb
endif
ifeq ($(call peer_has,rocksdb,rocksdb/c.h),y)
PEER_CPPFLAGS += -DPEER_HAVE_ROCKSDB \
                 -DPEER_ROCKSDB_VERSION='"$(shell pkg-config --modversion rocksdb 2>/dev/null)"'
PEER_LIBS     += -lrocksdb
endif
ifeq ($(call peer_has,lmdb,lmdb.h),y)
PEER_CPPFLAGS += -DPEER_HAVE_LMDB
PEER_LIBS     += -llmdb
endif
ifeq ($(call peer_has,tkrzw,tkrzw_langc.h),y)
PEER_CPPFLAGS += -DPEER_HAVE_TKRZW
PEER_LIBS     += -ltkrzw
endif

.PHONY: peerbench-flags
peerbench-flags:
	@mkdir -p $(BUILD)
	@echo '$(PEER_CPPFLAGS) $(PEER_LIBS)' | cmp -s - $(BUILD)/peerbench.flags \
	    || echo '$(PEER_CPPFLAGS) $(PEER_LIBS)' > $(BUILD)/peerbench.flags
$(BUILD)/peerbench.flags: peerbench-flags

$(BUILD)/obj/bench/peerbench.o: CPPFLAGS_KV += $(PEER_CPPFLAGS)
$(BUILD)/obj/bench/peerbench.o: $(BUILD)/peerbench.flags

$(BUILD)/bin/peerbench: $(BUILD)/obj/bench/peerbench.o $(BUILD)/obj/tools/json.o \
                       $(BUILD)/libkv.a $(BUILD)/peerbench.flags
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $(BUILD)/obj/bench/peerbench.o $(BUILD)/obj/tools/json.o \
	    $(BUILD)/libkv.a $(LDLIBS_KV) $(PEER_LIBS) -lm

# Engine-internal measurement (includes compress.h); not part of all, not installed.
$(BUILD)/bin/lz4probe: $(BUILD)/obj/bench/lz4probe.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

# A program built against an older, smaller kv_options and kv_stats (tests/abi/kv_v0.h)
# and linked to today's libkv.so: the abi suite runs it.
$(BUILD)/bin/kv-abi-old: $(BUILD)/obj/tests/abi/kv_old.o $(BUILD)/libkv.so
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $< $(BUILD)/libkv.so -Wl,-rpath,'$$ORIGIN/..'

# The abi suite reads engine/kv.h from the source tree.
$(BUILD)/obj/tests/test_abi.o: CPPFLAGS_KV += -DKV_SOURCE_DIR='"$(CURDIR)"'
$(BUILD)/obj/tests/test_peerbench.o: CPPFLAGS_KV += -DKV_SOURCE_DIR='"$(CURDIR)"'

# The tests read the tools' JSON with jansson (never a parser of their own), and
# test the JSON writer itself (tools/json.o) directly.
$(BUILD)/bin/kvtest: $(TEST_OBJ) $(BUILD)/obj/tools/json.o $(FSCK_LIB) $(BUILD)/libkv.a \
                    $(BUILD)/bin/kv $(BUILD)/bin/kvcompact $(BUILD)/bin/kvdump \
                    $(BUILD)/bin/kvcheck $(BUILD)/bin/kvbench $(BUILD)/bin/peerbench \
                    $(BUILD)/libkv.so $(BUILD)/bin/kv-abi-old
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $(TEST_OBJ) $(BUILD)/obj/tools/json.o $(FSCK_LIB) \
	    $(BUILD)/libkv.a $(LDLIBS_KV) -lcunit -ljansson

# ---- running ---------------------------------------------------------------------
deps:
	@sh .ci/deps

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh $(BUILD)

test: deps
	@sh engine/check-layers.sh
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-signals
	@$(MAKE) --no-print-directory test-asan

test-unit: $(BUILD)/bin/kvtest
	cd $(BUILD) && KV_BIN=$(CURDIR)/$(BUILD)/bin ./bin/kvtest

# No file of the library includes a layer above its own (engine/README.md).
check-layers:
	@sh engine/check-layers.sh

# The property, concurrency and refresh suites again under signal storms (tests/sigstorm.h):
# SIGPROF to every thread, the library's included, at 1 kHz and 10 kHz, with
# SA_RESTART and without it. A signal is never an I/O error (DESIGN.md, invariant 1).
SIGSTORMS ?= 1000 1000,norestart 10000 10000,norestart
test-signals: $(BUILD)/bin/kvtest
	@cd $(BUILD) && for storm in $(SIGSTORMS); do for s in property concurrency refresh; do \
	    echo "kvtest: suite $$s under a signal storm ($$storm)"; \
	    KV_TEST_QUICK=1 KV_TEST_SIGSTORM=$$storm KV_TEST_SUITE=$$s \
	        KV_BIN=$(CURDIR)/$(BUILD)/bin ./bin/kvtest > signals-$$s.log 2>&1 \
	        || { cat signals-$$s.log; exit 1; }; \
	    grep -E "^ +tests |signal storm:" signals-$$s.log; done; done

# ASan+UBSan: a separate tree so regular objects are never mixed in. The index keeps
# 6 hash bits in a slot instead of 19 here, so its tables take the path that rehashes
# keys once past 64 slots (a regular build takes it past 2^19 slots per shard).
# KV_DEBUG turns the library's assertions on (KV_ASSERT, engine/base/kv_int.h).
test-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	    EXTRA_CPPFLAGS="$(EXTRA_CPPFLAGS) -DKV_IDX_TAG_BITS=6 -DKV_DEBUG" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    build/asan/bin/kvtest
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    KV_TEST_QUICK=1 KV_BIN=$(CURDIR)/build/asan/bin ./bin/kvtest

# ThreadSanitizer over the suites that run threads against each other (recovery's
# parallel index build, writers and readers, compaction). Not part of make test: the
# crash and crashsim suites fork and reopen thousands of times, too slow under TSan.
# TSan's lock-order checker follows at most 64 locks held by one thread; a
# read-only handle's refresh holds its refresh lock and all 64 index shards at once
# (one step of whole batches), so the refresh suite runs without that checker (races
# are still found).
TSAN_SUITES ?= entry and recovery:api:compact:concurrency:lz4:property:refresh
test-tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan OPT="-O1 -g" SAN="-fsanitize=thread" \
	    build/tsan/bin/kvtest
	@cd build/tsan && list="$(TSAN_SUITES)" && IFS=: && for s in $$list; do \
	    dl=1; [ "$$s" = refresh ] && dl=0; \
	    TSAN_OPTIONS=halt_on_error=1:detect_deadlocks=$$dl KV_TEST_QUICK=1 KV_TEST_SUITE="$$s" \
	        KV_BIN=$(CURDIR)/build/tsan/bin ./bin/kvtest || exit 1; done

# valgrind memcheck over the CUnit suite: no error, no leak (--error-exitcode=1).
# KV_TEST_VALGRIND=1 tells the suite where valgrind cannot behave like the kernel:
# valgrind 3.19 runs one thread at a time and keeps that lock while a thread waits in
# io_uring_enter (unlike in fsync or futex), so no second writer can queue while a
# group commit is in flight; the group-commit test then uses the psync backend.
# Every other test, io_uring ones included, runs as usual. Forked children (the lock
# and crash tests) exit with a copy of the parent's heap: their output is silenced,
# and tests/valgrind.supp says why the one child that exits normally is no leak.
test-valgrind: $(BUILD)/bin/kvtest
	cd $(BUILD) && KV_TEST_QUICK=1 KV_TEST_VALGRIND=1 KV_TEST_EXCLUDE=crashsim \
	    KV_BIN=$(CURDIR)/$(BUILD)/bin \
	    valgrind --error-exitcode=1 --leak-check=full --child-silent-after-fork=yes \
	    --suppressions=$(CURDIR)/tests/valgrind.supp -q ./bin/kvtest

# Warning-clean under clang too (CI builds this).
test-clang:
	@$(MAKE) --no-print-directory BUILD=build/clang CC=clang all build/clang/bin/kvtest

bench: $(BUILD)/bin/kvbench
	$(BUILD)/bin/kvbench --num 200000 --benchmarks fillseq,fillrandom,overwrite,readrandom,readmissing,fillsync

# The peers' packages need root (sudo when not root); then three interleaved rounds
# (peerbench's default --repeat 3) of every workload on every engine and their
# medians, a few minutes on 2 cores at 100,000 keys (a round took under a minute
# before the YCSB workloads; --num 1000000: about 5 minutes a round).
# BENCH_PEERS_ARGS adds or overrides peerbench options (--repeat 1: one round).
BENCH_PEERS_ARGS ?=
bench-peers:
	@sh bench/deps
	@$(MAKE) --no-print-directory $(BUILD)/bin/peerbench
	$(BUILD)/bin/peerbench --list
	$(BUILD)/bin/peerbench --num 100000 --sync-num 2000 $(BENCH_PEERS_ARGS)

# The headline table and plots of docs/BENCHMARKS.md, regenerated: the peers
# installed and built, 1M keys, three interleaved rounds, medians, then the plots
# (bench-results/: peerbench.jsonl, table.md, throughput.png, p99.png, space.png).
# About 20 minutes on the 2-core VM; run it on a quiet machine.
bench-report:
	@sh bench/deps
	@$(MAKE) --no-print-directory $(BUILD)/bin/peerbench
	@mkdir -p bench-results
	$(BUILD)/bin/peerbench --num 1000000 --sync-num 20000 --repeat 3 --json \
	    > bench-results/peerbench.jsonl
	sh bench/plot.sh bench-results/peerbench.jsonl bench-results

lz4probe: $(BUILD)/bin/lz4probe
	$(BUILD)/bin/lz4probe

# KV_DEBUG: assertions on (KV_ASSERT, engine/base/kv_int.h); run the suite from
# build/debug as test-unit does (cd build/debug && KV_BIN=$PWD/bin ./bin/kvtest).
debug:
	@$(MAKE) --no-print-directory BUILD=build/debug OPT="-O0 -g" EXTRA_CPPFLAGS=-DKV_DEBUG \
	    all build/debug/bin/kvtest

# ---- fuzzing ---------------------------------------------------------------------
# One harness per property: fuzz/<name>_fuzzer.c (fuzz/README.md says what each
# checks). Two builds of them, each with its own copy of the library:
#   build/fuzz/<name>_fuzzer          clang, libFuzzer, ASan+UBSan (make fuzz)
#   build/fuzz/replay/<name>_replay   cc, fuzz/standalone.c, ASan+UBSan (make test)
# Both compile the library with a 64-byte scan window (KV_SCAN_WINDOW) so that small
# inputs exercise its refills; the regular build keeps 1 MiB.
FUZZERS    := entry entry_roundtrip wal hint manifest open inspect creq
FUZZ_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_DEFS  := -DKV_SCAN_WINDOW=64
FUZZ_OPTS  := -dict=fuzz/kv.dict -timeout=10 -malloc_limit_mb=64 -rss_limit_mb=2048
FUZZ_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TIME  ?= 1800
FUZZ_RUNS  ?= -1

fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT="-O1 -g" \
	    SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" EXTRA_CPPFLAGS="$(FUZZ_DEFS)" fuzz-bins

fuzz-bins: $(patsubst %,$(BUILD)/%_fuzzer,$(FUZZERS))

.PRECIOUS: $(BUILD)/obj/fuzz/%.o

$(BUILD)/%_fuzzer: $(BUILD)/obj/fuzz/%_fuzzer.o $(BUILD)/obj/fuzz/fuzz_util.o $(FSCK_LIB) \
                  $(BUILD)/libkv.a
	$(CC) $(LDFLAGS_KV) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_KV)

fuzz-replay-bins: $(patsubst %,$(BUILD)/%_replay,$(FUZZERS))

$(BUILD)/%_replay: $(BUILD)/obj/fuzz/%_fuzzer.o $(BUILD)/obj/fuzz/fuzz_util.o \
                   $(BUILD)/obj/fuzz/standalone.o $(FSCK_LIB) $(BUILD)/libkv.a
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

# Every checked-in input through its harness once: crashers stay fixed.
fuzz-replay:
	@$(MAKE) --no-print-directory BUILD=build/fuzz/replay OPT="-O1 -g" SAN="$(FUZZ_SAN)" \
	    EXTRA_CPPFLAGS="$(FUZZ_DEFS)" fuzz-replay-bins
	@for f in $(FUZZERS); do \
	    $(FUZZ_ENV) build/fuzz/replay/$${f}_replay fuzz/corpus/$$f || exit 1; \
	done

# A bounded run of every harness; new inputs go to build/fuzz/smoke, never to the
# checked-in corpus. Fails on the first crash, leak, timeout or broken invariant.
fuzz-smoke: fuzz
	@mkdir -p build/fuzz/smoke
	@for f in $(FUZZERS); do \
	    mkdir -p build/fuzz/smoke/$$f; \
	    $(FUZZ_ENV) build/fuzz/$${f}_fuzzer $(FUZZ_OPTS) -max_total_time=$(FUZZ_SMOKE_SECONDS) \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/smoke/$$f- \
	        build/fuzz/smoke/$$f fuzz/corpus/$$f > build/fuzz/smoke/$$f.log 2>&1 \
	    || { tail -40 build/fuzz/smoke/$$f.log; echo "fuzz-smoke: $$f FAILED (log: build/fuzz/smoke/$$f.log)"; exit 1; }; \
	    printf 'fuzz-smoke: %-16s %s\n' $$f "$$(grep -E '^#[0-9]+[[:space:]]+DONE' build/fuzz/smoke/$$f.log | tail -1)"; \
	done

# A campaign: one job, lowest priority, corpus in build/fuzz/work/<name> (seeded from
# fuzz/corpus/<name>), crashers saved as build/fuzz/work/<name>-crash-*. It ends after
# FUZZ_TIME seconds or FUZZ_RUNS executions, whichever comes first; the log is
# build/fuzz/work/fuzz-0.log.
fuzz-run: fuzz
	@test -n "$(FUZZER)" || { echo "usage: make fuzz-run FUZZER=<name> [FUZZ_TIME=seconds]"; exit 2; }
	@mkdir -p build/fuzz/work/$(FUZZER)
	cd build/fuzz/work && $(FUZZ_ENV) nice -n 19 ../$(FUZZER)_fuzzer \
	    $(subst fuzz/kv.dict,$(CURDIR)/fuzz/kv.dict,$(FUZZ_OPTS)) -jobs=1 -workers=1 \
	    -max_total_time=$(FUZZ_TIME) -runs=$(FUZZ_RUNS) -print_final_stats=1 -artifact_prefix=$(FUZZER)- \
	    $(FUZZER) $(CURDIR)/fuzz/corpus/$(FUZZER)

# Folds a campaign's corpus (and any seeds) into fuzz/corpus/<name>, minimized:
# libFuzzer keeps the inputs that add coverage, named by their SHA-1. Inputs that
# once crashed (crash-*) are kept whatever their coverage, under their own name.
fuzz-merge: fuzz
	@test -n "$(FUZZER)" || { echo "usage: make fuzz-merge FUZZER=<name>"; exit 2; }
	rm -rf build/fuzz/merged/$(FUZZER) && mkdir -p build/fuzz/merged/$(FUZZER) fuzz/corpus/$(FUZZER)
	$(FUZZ_ENV) build/fuzz/$(FUZZER)_fuzzer $(FUZZ_OPTS) -merge=1 build/fuzz/merged/$(FUZZER) \
	    fuzz/corpus/$(FUZZER) $(wildcard build/fuzz/work/$(FUZZER) build/fuzz/seeds/$(FUZZER))
	for c in fuzz/corpus/$(FUZZER)/crash-*; do [ -f "$$c" ] || continue; \
	    rm -f build/fuzz/merged/$(FUZZER)/$$(sha1sum < "$$c" | cut -c1-40); \
	    cp "$$c" build/fuzz/merged/$(FUZZER)/; done
	rm -rf fuzz/corpus/$(FUZZER) && mv build/fuzz/merged/$(FUZZER) fuzz/corpus/$(FUZZER)

# Seeds from real encoder output: stores made by the library, their files cut into
# the inputs each harness takes (fuzz/gen_corpus.c); then merged as above.
$(BUILD)/bin/kv-fuzz-seeds: $(BUILD)/obj/fuzz/gen_corpus.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

fuzz-corpus: $(BUILD)/bin/kv-fuzz-seeds fuzz
	rm -rf build/fuzz/seeds && $(BUILD)/bin/kv-fuzz-seeds build/fuzz/seeds
	@for f in $(FUZZERS); do mkdir -p fuzz/corpus/$$f; \
	    $(MAKE) --no-print-directory fuzz-merge FUZZER=$$f || exit 1; done

# ---- installing ------------------------------------------------------------------
# kv.pc is made again at every install: it holds PREFIX, LIBDIR and INCDIR, which
# may differ from the last install's.
.PHONY: $(BUILD)/kv.pc
$(BUILD)/kv.pc: engine/kv.pc.in
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(shell sed -n 's/^#define KV_VERSION_STRING "\(.*\)"/\1/p' engine/kv.h)|' $< > $@

install: all $(BUILD)/kv.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(BUILD)/libkv.a $(DESTDIR)$(LIBDIR)/libkv.a
	install -m 755 $(BUILD)/libkv.so $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkv.so
	install -m 644 engine/kv.h $(DESTDIR)$(INCDIR)/kv.h
	install -m 644 $(BUILD)/kv.pc $(DESTDIR)$(LIBDIR)/pkgconfig/kv.pc
	install -m 755 $(INSTALL_TOOLS) $(DESTDIR)$(BINDIR)/
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MAN3),install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/)

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkv.a $(DESTDIR)$(LIBDIR)/libkv.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(INCDIR)/kv.h $(DESTDIR)$(LIBDIR)/pkgconfig/kv.pc \
	    $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_TOOLS)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d)
