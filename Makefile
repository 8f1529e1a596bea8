# kv — every build, test, bench and install target.
#
#   make            build/libkv.a, build/libkv.so, build/bin/{kv,kvbench,kvdemo,kvcompact}
#   make run        install missing Debian packages, build, run the demo
#   make test       the CUnit suite, then the same suite under ASan+UBSan
#   make test-unit  the CUnit suite only (regular build)
#   make test-asan  the CUnit suite built with -fsanitize=address,undefined
#   make bench      a short kvbench run
#   make install    PREFIX=/usr/local DESTDIR= : library, header, kv.pc, tools, man pages
#   make debug      everything with -O0 -g and KV_DEBUG extra checks, in build/debug
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
CFLAGS_KV   := -std=c11 -fPIC -pthread $(OPT) $(WARN) $(SAN) $(EXTRA_CFLAGS)
LDLIBS_KV   := -luring -lisal -lxxhash -lpthread
LDFLAGS_KV  := -pthread $(SAN) $(EXTRA_LDFLAGS)

LIB_SRC := $(wildcard engine/*.c) $(wildcard wal/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC))

TOOLS   := $(BUILD)/bin/kv $(BUILD)/bin/kvbench $(BUILD)/bin/kvdemo $(BUILD)/bin/kvcompact

.PHONY: all run deps test test-unit test-asan test-clang bench install uninstall debug clean
all: $(BUILD)/libkv.a $(BUILD)/libkv.so $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_KV) $(CFLAGS_KV) -MMD -MP -c $< -o $@

$(BUILD)/libkv.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libkv.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libkv.so.0 $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kv: $(BUILD)/obj/tools/kv.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvcompact: $(BUILD)/obj/tools/kvcompact.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvdemo: $(BUILD)/obj/tools/kvdemo.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV)

$(BUILD)/bin/kvbench: $(BUILD)/obj/bench/kvbench.o $(BUILD)/libkv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $^ $(LDLIBS_KV) -lm

$(BUILD)/bin/kvtest: $(TEST_OBJ) $(BUILD)/libkv.a $(BUILD)/bin/kv $(BUILD)/bin/kvcompact
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_KV) -o $@ $(TEST_OBJ) $(BUILD)/libkv.a $(LDLIBS_KV) -lcunit

# ---- running ---------------------------------------------------------------------
deps:
	@sh .ci/deps

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/demo.sh $(BUILD)

test: deps
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-asan

test-unit: $(BUILD)/bin/kvtest
	cd $(BUILD) && KV_BIN=$(CURDIR)/$(BUILD)/bin ./bin/kvtest

# ASan+UBSan: a separate tree so regular objects are never mixed in.
test-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    build/asan/bin/kvtest
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    KV_TEST_QUICK=1 KV_BIN=$(CURDIR)/build/asan/bin ./bin/kvtest

# Warning-clean under clang too (CI builds this).
test-clang:
	@$(MAKE) --no-print-directory BUILD=build/clang CC=clang all build/clang/bin/kvtest

bench: $(BUILD)/bin/kvbench
	$(BUILD)/bin/kvbench --num 200000 --benchmarks fillseq,fillrandom,overwrite,readrandom,readmissing,fillsync

debug:
	@$(MAKE) --no-print-directory BUILD=build/debug OPT="-O0 -g" EXTRA_CPPFLAGS=-DKV_DEBUG all

# ---- installing ------------------------------------------------------------------
$(BUILD)/kv.pc: engine/kv.pc.in
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(shell sed -n 's/^#define KV_VERSION_STRING "\(.*\)"/\1/p' engine/kv.h)|' $< > $@

install: all $(BUILD)/kv.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(BUILD)/libkv.a $(DESTDIR)$(LIBDIR)/libkv.a
	install -m 755 $(BUILD)/libkv.so $(DESTDIR)$(LIBDIR)/libkv.so.0
	ln -sf libkv.so.0 $(DESTDIR)$(LIBDIR)/libkv.so
	install -m 644 engine/kv.h $(DESTDIR)$(INCDIR)/kv.h
	install -m 644 $(BUILD)/kv.pc $(DESTDIR)$(LIBDIR)/pkgconfig/kv.pc
	install -m 755 $(BUILD)/bin/kv $(BUILD)/bin/kvbench $(BUILD)/bin/kvcompact $(DESTDIR)$(BINDIR)/
	for m in docs/man/*.1; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man1/; done; true
	for m in docs/man/*.3; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man3/; done; true

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkv.a $(DESTDIR)$(LIBDIR)/libkv.so $(DESTDIR)$(LIBDIR)/libkv.so.0 \
	    $(DESTDIR)$(INCDIR)/kv.h $(DESTDIR)$(LIBDIR)/pkgconfig/kv.pc \
	    $(DESTDIR)$(BINDIR)/kv $(DESTDIR)$(BINDIR)/kvbench $(DESTDIR)$(BINDIR)/kvcompact
	for m in docs/man/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$$(basename $$m); done; true
	for m in docs/man/*.3; do rm -f $(DESTDIR)$(MANDIR)/man3/$$(basename $$m); done; true

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*/*.d)
