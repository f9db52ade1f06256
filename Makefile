# sealpost — one Makefile for build, test, run and install.
#
#   make deps     install the Debian packages we build and test with
#   make          build build/sealpost (and the test programs)
#   make test     deps + build + every test; prints "N passed, N failed"
#   make run      deps + build + init ./var + sealpost serve (foreground)
#   make asan     ASan+UBSan build in build-asan/ and the whole test suite on it
#   make fuzz     libFuzzer harnesses (clang) in build-fuzz/, each run
#                 FUZZ_SECONDS (default 60) on its seed corpus (fuzz/run.sh)
#   make fuzz-smoke  the same, one minute each (CI)
#   make valgrind unit tests and a whole delivery under valgrind memcheck
#   make install  PREFIX=/usr/local DESTDIR=
#   make clean
#
# Sources are found by wildcard: a new file in a part's folder is built
# without touching this file. Unit tests are tests/unit/test_*.c, one binary
# each; integration tests are tests/integration/test_*.{sh,py}.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc

PKGS      = gmime-3.0 libsodium sqlite3 opendkim libmicrohttpd openssl jansson libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2
WARN      = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE -I. $(WARN) $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LIBS      = $(PKG_LIBS) -letpan -lspf2 -ldl -lpthread -lm
ALL_LDFLAGS = $(LDFLAGS) $(EXTRA_LDFLAGS)

PARTS     = lib policy mime deliver smtpd sendlink cli
SRC_ALL  := $(foreach p,$(PARTS),$(wildcard $(p)/*.c))
SRC_MAIN  = cli/main.c
SRC_LIB  := $(filter-out $(SRC_MAIN),$(SRC_ALL))
OBJ_LIB  := $(SRC_LIB:%.c=$(BUILD)/%.o)
DEPFILES := $(OBJ_LIB:.o=.d) $(BUILD)/cli/main.d

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
PLUGIN_SRC := $(wildcard sendlink/plugins/*.c)
PLUGIN_SO  := $(PLUGIN_SRC:sendlink/plugins/%.c=$(BUILD)/plugins/%.so)
# Fuzz harnesses: fuzz/fuzz_*.c. Under `make fuzz` they link libFuzzer
# (clang); in every other build they link fuzz/replay_main.c, a plain main
# that feeds files to the harness, so that tests replay the kept crash
# inputs (tests/data/fuzz-regressions/) with gcc and under ASan.
FUZZ_SRC   := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN   := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_REPLAY := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz-replay/%)
FAULT_SO   := $(BUILD)/faultinject.so $(BUILD)/probe.so

DEB_PKGS = build-essential pkg-config clang libclang-rt-14-dev libgmime-3.0-dev libsodium-dev libsqlite3-dev \
           libetpan-dev libopendkim-dev libmicrohttpd-dev libssl-dev libjansson-dev \
           libcurl4-gnutls-dev libcmocka-dev libspf2-dev \
           python3 swaks libnet-ssleay-perl python3-dkim opendkim-tools openssl curl valgrind chromium chromium-driver \
           libfaketime

.PHONY: all deps test check unit run asan valgrind install clean format tests-bin fuzz fuzz-smoke fuzz-build

all: $(BUILD)/sealpost tests-bin

tests-bin: $(UNIT_BIN) $(TOOL_BIN) $(PLUGIN_SO) $(FUZZ_REPLAY) $(FAULT_SO)

$(BUILD)/libsealpost.a: $(OBJ_LIB)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/sealpost: $(BUILD)/cli/main.o $(BUILD)/libsealpost.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libsealpost.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsealpost.a $(LIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libsealpost.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsealpost.a $(LIBS)

$(BUILD)/plugins/%.so: sendlink/plugins/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -o $@ $<

$(BUILD)/fuzz-replay/%: fuzz/%.c fuzz/replay_main.c $(wildcard fuzz/*.h) $(BUILD)/libsealpost.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< fuzz/replay_main.c $(BUILD)/libsealpost.a $(LIBS)

# libFuzzer binaries: only in the fuzz build (CC=clang, see fuzz-build).
$(BUILD)/fuzz/%: fuzz/%.c $(wildcard fuzz/*.h) $(BUILD)/libsealpost.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libsealpost.a $(LIBS)

# The fault-injection and privilege-probe shims (tests/faultinject/),
# LD_PRELOADed by tests; never linked into the product.
$(BUILD)/%.so: tests/faultinject/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -o $@ $< -ldl

-include $(DEPFILES)

# Installs only what is missing; needs root (CI and fresh machines run as root).
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

test: deps
	$(MAKE) all
	BUILD=$(BUILD) tests/run.sh

# Tests without the apt step (for quick iteration).
check: all
	BUILD=$(BUILD) tests/run.sh

asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	BUILD=build-asan SEALPOST_ASAN=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh

FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined

fuzz-build:
	$(MAKE) build/sealpost
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 EXTRA_CFLAGS="$(FUZZ_CFLAGS)" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" \
	  $(patsubst fuzz/%.c,build-fuzz/fuzz/%,$(FUZZ_SRC))

fuzz: fuzz-build
	BUILD=build-fuzz fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	BUILD=build-fuzz fuzz/run.sh 60
valgrind: all
	BUILD=$(BUILD) tests/valgrind.sh

run: deps
	$(MAKE) $(BUILD)/sealpost
	@tools/run-local.sh $(BUILD)/sealpost

install: $(BUILD)/sealpost
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/sealpost $(DESTDIR)/etc/sealpost
	install -m 0755 $(BUILD)/sealpost $(DESTDIR)$(PREFIX)/bin/sealpost
	install -m 0644 etc/sealpost.conf.example $(DESTDIR)$(PREFIX)/share/doc/sealpost/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/sealpost/

format:
	clang-format -i $(SRC_ALL) $(wildcard */*.h) $(UNIT_SRC) $(TOOL_SRC)

clean:
	rm -rf build build-asan build-fuzz
