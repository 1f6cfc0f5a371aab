# PicoLM: build, test and install the C library (libpicolm.so / libpicolm.a), its header and the picolm CLI.
#   make                 library + CLI (build/picolm)
#   make header          regenerate include/picolm.h with cbindgen
#   make check-header    fail if include/picolm.h differs from what cbindgen generates
#   make test-c          C API tests (AddressSanitizer + UndefinedBehaviorSanitizer) and CLI tests
#   make server          the OpenAI-compatible HTTP server (target/release/picolm-server)
#   make install PREFIX=/usr/local   (library, header, pkg-config file, the CLI and picolm-server)
#   make test-install    run the README's "C library" commands verbatim with a scratch HOME (non-system prefix)
#   make size            sizes of the stripped libpicolm.so, libpicolm.a and the CLI linked statically
#   make size-table      that for several feature sets and targets (scripts/size-table.sh; README "Size")
#   make lib FEATURES="jinja quantize"   a library with only these optional parts (FEATURES=none: none of them;
#                        unset: all). Parts: jinja json-schema agent quantize bench state avx512 i8mm (picolm-core/Cargo.toml)
#                        CORE_OPT=z KERNEL_OPT=z LINK_OPT=z: opt-levels of picolm-core (default "s"), of its
#                        kernel crate picolm-kernels (default 3) and of the link-time optimisation (default 3);
#                        all three z is the smallest library, slower (README "Size"); SIZE_LINK=1 links it with
#                        identical-code folding and packed relative relocations (x86-64 rust-lld; glibc >= 2.36)
#   make cross TARGET=aarch64-linux-gnu [PREFIX=DIR] [STRIP=1]   cross build for a board (see "Cross builds" below)
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
CC ?= cc
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
REL := $(CARGO_TARGET_DIR)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
CSTD := -std=c11 -Wall -Wextra -Werror -pedantic
MODELS ?= $(or $(PICOLM_MODELS),$(CURDIR)/models)
# Extra libraries a static link of a Rust library needs (cargo rustc -- --print native-static-libs).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# picolm.pc carries an rpath for a library directory the dynamic loader does not search by itself (anything but
# /lib*, /usr/lib*): programs built with `pkg-config --libs picolm` then run without LD_LIBRARY_PATH or ldconfig.
comma := ,
PC_RPATH := $(if $(filter /lib /lib64 /usr/lib /usr/lib64 /lib/% /usr/lib/%,$(LIBDIR)),,-Wl$(comma)-rpath$(comma)$${libdir})

# Cargo options for FEATURES (unset: the default features, i.e. all), CORE_OPT (an opt-level for picolm-core, the
# engine outside its kernels; the release profile's is "s"), KERNEL_OPT (an opt-level for picolm-kernels, the SIMD
# and block-format kernels; the profile's is 3) and LINK_OPT (an opt-level for picolm-ffi: the library is one fat-LTO
# module, and the opt-level of the crate that links it is the one of the whole-program pass, which inlines and
# unrolls across crates; the profile's is 3). Opt-levels are per crate: the kernels are a crate of their own so that
# they keep 3 while the rest is built for size. CORE_OPT=3 is the all-speed build of before the split; KERNEL_OPT=z
# LINK_OPT=z is the smallest and slower: the kernels lose O3's unrolling (README "Size").
# An opt-level as TOML: s and z are strings, 0..3 numbers.
opt_value = $(if $(filter s z,$(1)),"$(1)",$(1))
CARGO_FEATURES = $(if $(strip $(FEATURES)),--no-default-features $(if $(filter none,$(FEATURES)),,--features "$(FEATURES)")) \
  $(if $(CORE_OPT),--config 'profile.release.package.picolm-core.opt-level=$(call opt_value,$(CORE_OPT))') \
  $(if $(KERNEL_OPT),--config 'profile.release.package.picolm-kernels.opt-level=$(call opt_value,$(KERNEL_OPT))') \
  $(if $(LINK_OPT),--config 'profile.release.package.picolm-ffi.opt-level=$(call opt_value,$(LINK_OPT))')

.PHONY: all lib cli server header check-header test-c test-c-valgrind test-install install size size-table cross clean build/picolm.pc

all: cli

# SIZE_LINK=1: link libpicolm.so with identical-code folding (--icf=all: functions with the same machine code are
# kept once) and packed relative relocations (-z pack-relative-relocs: DT_RELR, about 70 KB of relocations become
# 1 KB). About 100 KB smaller on x86-64 at no cost in speed; needs rust-lld (Rust's default linker on x86-64 Linux;
# GNU ld has no --icf) and glibc >= 2.36 on the machine that loads the library (DT_RELR), hence not the default.
# Only the link of picolm-ffi gets the options (cargo rustc), so nothing else is rebuilt.
SIZE_LINK_ARGS = $(if $(filter-out 0,$(SIZE_LINK)),-C link-arg=-Wl$(comma)--icf=all -C link-arg=-Wl$(comma)-z$(comma)pack-relative-relocs)

lib:
	$(if $(SIZE_LINK_ARGS),$(CARGO) rustc --release -p picolm-ffi --lib $(CARGO_FEATURES) -- $(SIZE_LINK_ARGS),$(CARGO) build --release -p picolm-ffi $(CARGO_FEATURES))
	ln -sf libpicolm.so $(REL)/libpicolm.so.0

build/picolm: bindings/c/picolm.c include/picolm.h lib
	@mkdir -p build
	$(CC) $(CSTD) -O2 -Iinclude bindings/c/picolm.c -L$(REL) -lpicolm -Wl,-rpath,'$$ORIGIN/../target/release' -Wl,-rpath,$(REL) -o $@

cli: build/picolm

server:
	$(CARGO) build --release -p picolm-server

# The header generator is a build tool: it runs in the dev profile (dependencies optimised, no LTO).
header:
	$(CARGO) run -q -p picolm-gen-header -- include/picolm.h

check-header:
	@mkdir -p build
	$(CARGO) run -q -p picolm-gen-header -- build/picolm.h.generated
	@diff -u include/picolm.h build/picolm.h.generated && echo "include/picolm.h is up to date"

build/golden.h: scripts/golden_c_header.py tests/golden/smollm2-greedy.json
	@mkdir -p build
	python3 scripts/golden_c_header.py tests/golden/smollm2-greedy.json > $@

build/test_api: tests/c/test_api.c include/picolm.h build/golden.h lib
	$(CC) $(CSTD) -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -Iinclude -Ibuild tests/c/test_api.c \
	  -L$(REL) -lpicolm -Wl,-rpath,$(REL) -lpthread -o $@

build/test_api_static: tests/c/test_api.c include/picolm.h build/golden.h lib
	$(CC) $(CSTD) -g -O1 -Iinclude -Ibuild tests/c/test_api.c $(REL)/libpicolm.a $(STATIC_LIBS) -o $@

EXAMPLES := $(patsubst examples/c/%.c,build/examples/%,$(wildcard examples/c/*.c))
build/examples/%: examples/c/%.c include/picolm.h lib
	@mkdir -p build/examples
	$(CC) $(CSTD) -O2 -Iinclude $< -L$(REL) -lpicolm -Wl,-rpath,$(REL) -lpthread -o $@

test-c: build/test_api build/test_api_static build/picolm $(EXAMPLES)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  PICOLM_MODELS=$(MODELS) build/test_api
	PICOLM_MODELS=$(MODELS) build/test_api_static --quick
	PICOLM_MODELS=$(MODELS) bash tests/c/cli_test.sh build/picolm
	@# An example that needs an optional part the library lacks (make test-c FEATURES=none) is skipped, saying so.
	@features=" $$(build/picolm --version | sed -n 's/^features: //p') "; \
	for e in $(EXAMPLES); do \
	  case "$${e##*/}" in iot_agent) need=agent ;; json_schema) need=json-schema ;; *) need= ;; esac; \
	  if [ -n "$$need" ] && [ "$${features#* $$need }" = "$$features" ]; then echo "== $$e: skipped (no $$need feature)"; continue; fi; \
	  echo "== $$e"; PICOLM_MODELS=$(MODELS) $$e $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf > /dev/null || exit 1; \
	done

test-c-valgrind: build/test_api_static
	PICOLM_MODELS=$(MODELS) valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite build/test_api_static --quick

build/picolm.pc: picolm.pc.in
	@mkdir -p build
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' -e 's|@RPATH@|$(PC_RPATH)|g' $< > $@

install: lib server build/picolm.pc
	@mkdir -p build
	$(CC) $(CSTD) -O2 -Iinclude bindings/c/picolm.c -L$(REL) -lpicolm -Wl,-rpath,$(LIBDIR) -o build/picolm.installed
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 0755 $(REL)/libpicolm.so $(DESTDIR)$(LIBDIR)/libpicolm.so.$(VERSION)
	ln -sf libpicolm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpicolm.so.0
	ln -sf libpicolm.so.0 $(DESTDIR)$(LIBDIR)/libpicolm.so
	install -m 0644 $(REL)/libpicolm.a $(DESTDIR)$(LIBDIR)/libpicolm.a
	install -m 0644 include/picolm.h $(DESTDIR)$(INCLUDEDIR)/picolm.h
	install -m 0644 build/picolm.pc $(DESTDIR)$(LIBDIR)/pkgconfig/picolm.pc
	install -m 0755 build/picolm.installed $(DESTDIR)$(BINDIR)/picolm
	install -m 0755 $(REL)/picolm-server $(DESTDIR)$(BINDIR)/picolm-server

# Runs the README's "C library" commands verbatim (HOME = a scratch directory, so PREFIX=$HOME/.local is a
# non-system prefix, with no LD_LIBRARY_PATH or PKG_CONFIG_PATH from outside); then installs into another scratch
# prefix and builds examples/c/stream.c with pkg-config (shared) and against libpicolm.a with picolm.pc's flags.
test-install:
	PICOLM_MODELS=$(MODELS) scripts/test-readme-install.sh
	rm -rf build/prefix
	$(MAKE) -s install PREFIX=$(CURDIR)/build/prefix
	@mkdir -p build/installed
	PKG_CONFIG_PATH=$(CURDIR)/build/prefix/lib/pkgconfig sh -c '$(CC) $(CSTD) -O2 examples/c/stream.c $$(pkg-config --cflags --libs picolm) -o build/installed/stream'
	PKG_CONFIG_PATH=$(CURDIR)/build/prefix/lib/pkgconfig sh -c '$(CC) $(CSTD) -O2 $$(pkg-config --cflags picolm) examples/c/stream.c build/prefix/lib/libpicolm.a $$(pkg-config --static --libs-only-other --libs-only-l picolm | sed "s/-lpicolm//") -o build/installed/stream-static'
	LD_LIBRARY_PATH=$(CURDIR)/build/prefix/lib build/installed/stream $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf | grep -q .
	build/installed/stream-static $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf | grep -q .
	! ldd build/installed/stream-static | grep -q libpicolm
	@echo "install test passed: $$(ls build/prefix/lib build/prefix/include build/prefix/lib/pkgconfig | tr '\n' ' ')"

# What a board's flash has to hold: libpicolm.so stripped, libpicolm.a, and the CLI linked statically against
# libpicolm.a (stripped), in bytes.
size: lib
	@mkdir -p build/size
	strip -o build/size/libpicolm.so $(REL)/libpicolm.so
	$(CC) $(CSTD) -O2 -Iinclude bindings/c/picolm.c $(REL)/libpicolm.a $(STATIC_LIBS) -o build/size/picolm-static
	strip build/size/picolm-static
	@printf '%-42s %10s\n' "libpicolm.so (stripped)" $$(stat -c %s build/size/libpicolm.so) \
	  "libpicolm.a" $$(stat -c %s $(REL)/libpicolm.a) "picolm CLI, static libpicolm (stripped)" $$(stat -c %s build/size/picolm-static)

# The README's "Size" table: the sizes above per feature set and target (TARGETS="x86_64 aarch64 armv7").
size-table:
	scripts/size-table.sh $(TARGETS)

# ---- Cross builds ----
# make cross TARGET=TRIPLE [PREFIX=DIR] [DESTDIR=STAGING] [STRIP=1] [RUST_TARGET=...]
#   TRIPLE is the GNU triple of the cross toolchain (Debian: apt-get install gcc-TRIPLE; rustup target add the Rust
#   target below):
#     aarch64-linux-gnu      64-bit Raspberry Pi OS (Pi 3/4/5/Zero 2W)  Rust target aarch64-unknown-linux-gnu
#     arm-linux-gnueabihf    32-bit Raspberry Pi OS, ARMv7 + NEON       Rust target thumbv7neon-unknown-linux-gnueabihf
#     riscv64-linux-gnu      RISC-V 64 boards (RV64GC)                  Rust target riscv64gc-unknown-linux-gnu
#   Writes lib/libpicolm.so.VERSION (+ libpicolm.so.0 and libpicolm.so links), lib/libpicolm.a,
#   lib/pkgconfig/picolm.pc, include/picolm.h and bin/picolm under DESTDIR+PREFIX (default PREFIX:
#   build/cross/TRIPLE). The CLI finds the library through the rpath $ORIGIN/../lib, so the tree works wherever it is
#   copied (a firmware image, /usr/local on the board); STRIP=1 strips the library and the CLI.
#   armv7: thumbv7neon is Rust's armhf target with NEON on (Thumb-2 code, hard-float ABI, the same glibc as
#   armv7-unknown-linux-gnueabihf): every Pi from the Pi 2 on has NEON, the standard library comes built with it, and
#   no unstable -C target-feature=+neon is needed. Pi 1 / Zero (ARMv6) are not supported.
RUST_TARGET_aarch64-linux-gnu := aarch64-unknown-linux-gnu
RUST_TARGET_arm-linux-gnueabihf := thumbv7neon-unknown-linux-gnueabihf
RUST_TARGET_riscv64-linux-gnu := riscv64gc-unknown-linux-gnu
CROSS_RUST_TARGET = $(or $(RUST_TARGET),$(RUST_TARGET_$(TARGET)))
CROSS_CC = $(or $(CROSS_COMPILE_CC),$(TARGET)-gcc)
CROSS_REL = $(CARGO_TARGET_DIR)/$(CROSS_RUST_TARGET)/release
CROSS_PREFIX = $(if $(filter command line environment,$(origin PREFIX)),$(PREFIX),$(CURDIR)/build/cross/$(TARGET))
CROSS_DEST = $(DESTDIR)$(CROSS_PREFIX)
# As for a native install: an rpath in picolm.pc unless the board's library directory is a system one.
CROSS_PC_RPATH = $(if $(filter /usr /,$(CROSS_PREFIX)),,-Wl$(comma)-rpath$(comma)$${libdir})
CROSS_LINKER_VAR = CARGO_TARGET_$(shell echo '$(CROSS_RUST_TARGET)' | tr 'a-z-' 'A-Z_')_LINKER

cross:
	@test -n "$(TARGET)" || { echo "make cross: give TARGET=aarch64-linux-gnu, arm-linux-gnueabihf or riscv64-linux-gnu" >&2; exit 2; }
	@test -n "$(CROSS_RUST_TARGET)" || { echo "make cross: no Rust target known for TARGET=$(TARGET); give RUST_TARGET=..." >&2; exit 2; }
	@command -v $(CROSS_CC) >/dev/null || { echo "make cross: $(CROSS_CC) not found (Debian: apt-get install gcc-$(TARGET))" >&2; exit 2; }
	$(CROSS_LINKER_VAR)=$(CROSS_CC) $(CARGO) build --release -p picolm-ffi --target $(CROSS_RUST_TARGET) $(CARGO_FEATURES)
	install -d $(CROSS_DEST)/lib/pkgconfig $(CROSS_DEST)/include $(CROSS_DEST)/bin
	install -m 0755 $(CROSS_REL)/libpicolm.so $(CROSS_DEST)/lib/libpicolm.so.$(VERSION)
	ln -sf libpicolm.so.$(VERSION) $(CROSS_DEST)/lib/libpicolm.so.0
	ln -sf libpicolm.so.0 $(CROSS_DEST)/lib/libpicolm.so
	install -m 0644 $(CROSS_REL)/libpicolm.a $(CROSS_DEST)/lib/libpicolm.a
	install -m 0644 include/picolm.h $(CROSS_DEST)/include/picolm.h
	sed -e 's|@PREFIX@|$(CROSS_PREFIX)|g' -e 's|@LIBDIR@|$${prefix}/lib|g' -e 's|@INCLUDEDIR@|$${prefix}/include|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' -e 's|@RPATH@|$(CROSS_PC_RPATH)|g' \
	    picolm.pc.in > $(CROSS_DEST)/lib/pkgconfig/picolm.pc
	$(CROSS_CC) $(CSTD) -O2 -Iinclude bindings/c/picolm.c -L$(CROSS_DEST)/lib -lpicolm -Wl,-rpath,'$$ORIGIN/../lib' \
	  -o $(CROSS_DEST)/bin/picolm
	@if [ -n "$(STRIP)" ] && [ "$(STRIP)" != 0 ]; then \
	  $(TARGET)-strip --strip-unneeded $(CROSS_DEST)/lib/libpicolm.so.$(VERSION) && $(TARGET)-strip $(CROSS_DEST)/bin/picolm; fi
	@echo "cross build for $(TARGET) ($(CROSS_RUST_TARGET)) in $(CROSS_DEST)"

clean:
	rm -rf build
