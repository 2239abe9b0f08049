# ctxgate - one build for everything. Plain GNU Make; every knob is ?=.
#
#   make deps     install missing Debian packages (apt-get; sudo when not root)
#   make          build build/release/ctxgate
#   make test     deps + ASan/UBSan build + throwaway PostgreSQL + every test
#   make demo     deps + build + sync examples/demo + answer as two users
#   make bench    run the benchmarks (results go to docs/benchmarks.md by hand)
#   make asan     sanitizer build only;  make fuzz   libFuzzer targets
#   make format / lint / install

CC        ?= cc
CXX       ?= g++
PREFIX    ?= /usr/local
BUILD     ?= build/release
OPT       ?= -O2 -g
SAN       ?=
WERROR    ?= -Werror
PKGS      ?= jansson sqlite3 libpq libcrypto odbc libcurl libjwt libmicrohttpd
CPPFLAGS  ?=
LDFLAGS   ?=

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# gcc's -Wformat-truncation fires on every bounded path snprintf; clang has no such flag.
NO_TRUNC := $(shell $(CC) -Werror -Wno-format-truncation -x c -c /dev/null -o /dev/null \
              2>/dev/null && echo -Wno-format-truncation)
WARN   := -Wall -Wextra $(WERROR) -Wformat=2 -Wshadow -Wstrict-prototypes \
          -Wmissing-prototypes -Wno-missing-field-initializers $(NO_TRUNC)
CFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE $(OPT) $(SAN) $(WARN) -fvisibility=hidden -MMD -MP \
              -I. -Iconnectors/sdk $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
# FAISS (the vector index, indexer/faiss_bridge.cpp): Debian ships only a
# static libfaiss and no pkg-config file; it needs BLAS, LAPACK and OpenMP.
FAISS_LIBS ?= -lfaiss -llapack -lblas -lgomp -lstdc++
LIBS   := $(PKG_LIBS) $(FAISS_LIBS) -ldl -lm -lpthread
# C++ only where FAISS needs it; vptr checks need RTTI FAISS was not built for.
CXXFLAGS_ALL := -std=c++17 $(OPT) $(SAN) $(if $(SAN),-fno-sanitize=vptr) -Wall -Wextra \
                $(WERROR) -Wshadow -Wno-missing-field-initializers -fvisibility=hidden \
                -MMD -MP -I. $(CPPFLAGS) $(CXXFLAGS)

LIB_SRC := $(wildcard core/*.c indexer/*.c connectors/*.c connectors/*/*.c \
             agent/*.c retrieval/*.c)
CLI_SRC := $(wildcard cli/*.c)
LIB_CXX_SRC := $(wildcard indexer/*.cpp)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_CXX_SRC:%.cpp=$(BUILD)/%.o) \
           $(BUILD)/gen/console_html.o
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
TEST_HELP := $(wildcard tests/lib/*.c)
TEST_BINS := $(UNIT_SRC:%.c=$(BUILD)/%) $(INTEG_SRC:%.c=$(BUILD)/%)
TEST_PLUGINS := $(patsubst %.c,$(BUILD)/%.so,$(wildcard tests/plugins/*.c))

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRC:%.c=$(BUILD)/%)

# Quiet rules; `make V=1` shows the commands.
Q := $(if $(V),,@)

.PHONY: all deps test test-run asan demo bench fuzz format lint install clean check-deps

all: $(BUILD)/ctxgate

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) $(CXXFLAGS_ALL) -c $< -o $@

# The admin console's page, compiled in as a C string (awk, no other tool).
$(BUILD)/gen/console_html.c: retrieval/console.html scripts/embed.awk
	@mkdir -p $(dir $@)
	$(Q)awk -v name=ctx_console_html -f scripts/embed.awk retrieval/console.html >$@

$(BUILD)/gen/console_html.o: $(BUILD)/gen/console_html.c
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libctxgate.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/ctxgate: $(CLI_OBJ) $(BUILD)/libctxgate.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(SAN) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libctxgate.a $(LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELP) $(BUILD)/libctxgate.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -o $@ $< $(TEST_HELP) \
	    $(BUILD)/libctxgate.a $(LIBS) -lcriterion $(LDFLAGS)

# Test connectors are real plugins: built as .so, loaded with dlopen.
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c connectors/sdk/ctxgate/connector.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PLUGIN  $@")
	$(Q)$(CC) -std=gnu11 $(OPT) $(SAN) $(WARN) -Wno-missing-prototypes -fPIC -shared \
	    -fvisibility=hidden -Iconnectors/sdk -o $@ $<

# The flawed test connectors wrap the connector template's source.
$(filter $(BUILD)/tests/plugins/flawed%,$(TEST_PLUGINS)): examples/connector-template/jsonl.c

# The plugin development kit for real: `make install` into a scratch DESTDIR,
# then the connector template's own Makefile finds the SDK with pkg-config.
PDK_DIR := $(BUILD)/pdk
$(PDK_DIR)/jsonl.so: $(BUILD)/ctxgate examples/connector-template/jsonl.c \
                     examples/connector-template/Makefile connectors/sdk/ctxgate.pc.in
	@rm -rf $(PDK_DIR)
	@$(if $(Q),echo "  PDK     $@")
	$(Q)$(MAKE) --no-print-directory install DESTDIR=$(abspath $(PDK_DIR))/root >/dev/null
	$(Q)PKG_CONFIG_PATH=$(abspath $(PDK_DIR))/root$(PREFIX)/lib/pkgconfig $(MAKE) \
	    --no-print-directory -C examples/connector-template OUT=$(abspath $(PDK_DIR)) \
	    CC="$(CC)" CFLAGS="$(OPT) $(SAN) $(WARN)" >/dev/null

$(BUILD)/bench/%: bench/%.c $(BUILD)/libctxgate.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -o $@ $< $(BUILD)/libctxgate.a $(LIBS) $(LDFLAGS)

deps:
	@sh scripts/deps.sh

# The test build carries ASan and UBSan; tests run against a PostgreSQL
# started for the run in a temp dir and stopped afterwards.
TEST_BUILD := build/asan
TEST_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

test: deps
	$(MAKE) BUILD=$(TEST_BUILD) OPT="-O1 -g" SAN="$(TEST_SAN)" test-run

test-run: $(BUILD)/ctxgate $(TEST_BINS) $(TEST_PLUGINS) $(PDK_DIR)/jsonl.so
	@BUILD=$(BUILD) sh scripts/run-tests.sh $(TEST_BINS)

asan:
	$(MAKE) BUILD=$(TEST_BUILD) OPT="-O1 -g" SAN="$(TEST_SAN)" $(TEST_BUILD)/ctxgate

demo: deps
	$(MAKE) all
	@sh scripts/demo.sh $(BUILD)/ctxgate

bench: deps
	$(MAKE) all $(BENCH_BINS)
	@BUILD=$(BUILD) sh scripts/bench.sh

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
# The library holds C++ (the FAISS bridge): clang++ builds it and links.
fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang CXX=clang++ OPT="-O1 -g" \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined" build/fuzz/libctxgate.a
	@for f in $(FUZZ_SRC); do \
	    b=build/fuzz/$${f%.c}; mkdir -p $$(dirname $$b); \
	    clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -I. -Iconnectors/sdk \
	        $(PKG_CFLAGS) -c -o $$b.o $$f && \
	    clang++ -fsanitize=fuzzer,address,undefined -o $$b $$b.o build/fuzz/libctxgate.a \
	        $(LIBS) || exit 1; \
	done
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(wildcard */*.h */*/*.h)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem --suppress=unknownMacro -I. $(LIB_SRC) $(CLI_SRC)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/ctxgate \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/ctxgate $(DESTDIR)$(PREFIX)/bin/ctxgate
	install -m 644 connectors/sdk/ctxgate/connector.h $(DESTDIR)$(PREFIX)/include/ctxgate/
	sed 's|@PREFIX@|$(PREFIX)|' connectors/sdk/ctxgate.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ctxgate.pc

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
