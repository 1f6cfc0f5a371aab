#!/usr/bin/env bash
# Runs every test of PicoLM: fetches the real model and derives the test data from it (once; see
# scripts/fetch-models.sh), then the Rust unit and end-to-end tests, the ARM/RISC-V builds under qemu, the Python
# wheels for Raspberry Pi OS under qemu, the C library tests (header drift check, C API tests under sanitizers, CLI
# tests) and the Python package tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

echo "== fetching models and test data"
scripts/fetch-models.sh --tests

echo "== style: cargo fmt --check and cargo clippy -D warnings (the habits that keep the tree readable)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== Rust tests"
cargo test --release --workspace

if grep -q avx512_vnni /proc/cpuinfo 2>/dev/null; then
  echo "== x86 AVX2 kernels end to end on this AVX-512 CPU (PICOLM_NO_AVX512=1)"
  PICOLM_NO_AVX512=1 cargo test --release -p picolm-integration-tests --test generation --test golden_greedy
fi

echo "== ARM and RISC-V under qemu: kernel tests, make cross (GNU ld), the CLI end to end (installs qemu-user and the"
echo "   cross compilers when it can; a target is skipped, with the reason, only when they cannot be installed)"
scripts/test-arm.sh

echo "== Python wheels for Raspberry Pi OS: scripts/build-wheels.sh (x86_64, aarch64, armv7l), each installed with"
echo "   Debian bookworm's python3.11 and pip under qemu, greedy output = x86_64's (skipped, with the reason, only when"
echo "   qemu-user cannot be installed)"
scripts/test-wheel-arm.sh

if [ -f Makefile ]; then
  echo "== C library: header drift, C API tests, CLI tests"
  make check-header
  make test-c
  echo "== C library: install to a prefix, build an example with pkg-config (shared and static)"
  make test-install
  if command -v valgrind >/dev/null 2>&1; then
    echo "== C library: valgrind (memory errors and leaks) on the statically linked API tests"
    make test-c-valgrind
  else
    echo "== C library: valgrind skipped: valgrind is not installed (apt-get install valgrind)"
  fi
  echo "== C library without its optional parts (make test-c FEATURES=none): the left-out features' functions and"
  echo "   options fail with PICOLM_ERR_UNSUPPORTED naming the feature; everything else passes as in the default build"
  make test-c FEATURES=none
  make lib  # the default library again
fi

if [ -x scripts/test-python.sh ]; then
  echo "== Python package tests"
  scripts/test-python.sh
fi
echo "== all tests passed"
