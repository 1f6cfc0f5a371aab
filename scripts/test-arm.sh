#!/usr/bin/env bash
# Runs the quantization and SIMD kernel tests of picolm-core for aarch64 under qemu-user, on CPU models without the
# dot-product extension (Cortex-A53: Pi Zero 2W / Pi 3; Cortex-A72: Pi 4) and with it (Cortex-A76: Pi 5), so the
# NEON and NEON+sdot kernels are both compared against the scalar reference. Skips with the reason when the cross
# tools are missing. armv7: NEON intrinsics are not stable in Rust, so 32-bit boards use the portable scalar
# path; its tests run here under qemu-arm when that cross toolchain is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

run_target() { # rust target, linker, qemu binary, sysroot, cpu models...
  local target="$1" linker="$2" qemu="$3" sysroot="$4"
  shift 4
  if ! command -v "$linker" >/dev/null || ! command -v "$qemu" >/dev/null; then
    echo "test-arm: skipping $target: $linker or $qemu is missing (Debian: apt-get install qemu-user gcc-${linker%-gcc})"
    return 0
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" >/dev/null 2>&1 || { echo "test-arm: skipping $target: rustup cannot add the target"; return 0; }
  fi
  local var
  var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER"
  export "$var=$linker"
  cargo test --release -p picolm-core --target "$target" --lib --no-run -q 2>/dev/null || cargo test --release -p picolm-core --target "$target" --lib --no-run
  local bin
  bin=$(ls -t target/"$target"/release/deps/picolm_core-* | grep -v '\.d$' | head -n1)
  for cpu in "$@"; do
    echo "== $target on $cpu"
    # pipefail: a failing test binary fails the script.
    QEMU_CPU="$cpu" "$qemu" -L "$sysroot" "$bin" --test-threads 2 quant simd --nocapture 2>&1 | grep -E "cpu path|test result|panicked|FAILED"
  done
}

run_target aarch64-unknown-linux-gnu aarch64-linux-gnu-gcc qemu-aarch64 /usr/aarch64-linux-gnu cortex-a53 cortex-a72 cortex-a76
run_target armv7-unknown-linux-gnueabihf arm-linux-gnueabihf-gcc qemu-arm /usr/arm-linux-gnueabihf cortex-a7
