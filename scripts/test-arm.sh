#!/usr/bin/env bash
# Tests PicoLM for the boards under qemu-user, built with the GNU cross toolchains (GNU ld, as on Raspberry Pi OS):
#   1. the quantization and SIMD kernel unit tests (crate picolm-kernels): aarch64 on Cortex-A53 (Pi Zero 2W / Pi 3),
#      Cortex-A72 (Pi 4), Cortex-A76 (Pi 5: NEON + sdot) and `max` (qemu's every-feature core: sdot and the i8mm
#      `smmla` of Armv8.6, as in Cortex-A510/A710, Neoverse N2/V1, Apple M2), each checked to take its kernel path;
#      armv7 with NEON (32-bit Pi OS) on Cortex-A7 (Pi 2) and `max` (ARMv8 in 32-bit mode, for the Pi 3/4/5) with the
#      NEON kernels, and on Cortex-A8 (no VFPv4) with the scalar ones;
#   2. `make cross` for aarch64, armv7 (arm-linux-gnueabihf) and riscv64: libpicolm.so and libpicolm.a, picolm.h,
#      picolm.pc and the CLI; the library's soname and exports (exactly the functions of picolm.h) are checked, an
#      example links statically against libpicolm.a with the flags of picolm.pc, and the stripped sizes are printed;
#   3. the cross-built CLI end to end under qemu: a greedy generation with the F32 model prints the same text as
#      the x86-64 build.
# Missing tools are installed when possible (root with apt-get: qemu-user, gcc-TRIPLE, the target's C library;
# `rustup target add`); a target is skipped only when that is impossible, with the reason. PICOLM_ARM_INSTALL=0
# never installs; PICOLM_ARM_TARGETS="aarch64 armv7 riscv64" chooses targets. Models: $PICOLM_MODELS or ./models
# (scripts/fetch-models.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
models="${PICOLM_MODELS:-$root/models}"
f32_model="$models/smollm2-135m-F32.gguf"
targets="${PICOLM_ARM_TARGETS:-aarch64 armv7 riscv64}"
prompt="The capital of France is"
n_gen=12

# shellcheck source=scripts/arm-env.sh
. "$root/scripts/arm-env.sh"
cli_cpu_of() { case "$1" in aarch64) echo cortex-a53 ;; armv7) echo cortex-a7 ;; riscv64) echo rv64 ;; esac; }
# armv7: qemu-arm has no cortex-a53 model, so `max` (an ARMv8 core running 32-bit code, as the Pi 3/4/5 do under
# 32-bit Raspberry Pi OS) stands in for it; cortex-a8 (NEON without VFPv4) must keep the scalar path.
unit_cpus_of() { case "$1" in aarch64) echo "cortex-a53 cortex-a72 cortex-a76 max" ;; armv7) echo "cortex-a7 max cortex-a8" ;; *) echo "" ;; esac; }
# The kernel path the unit tests must report on a CPU (PICOLM_EXPECT_CPU_PATH; empty: not checked).
expect_path_of() {
  case "$1:$2" in
    aarch64:cortex-a53|aarch64:cortex-a72) echo aarch64-neon ;;
    aarch64:cortex-a76) echo aarch64-neon-dotprod ;;
    aarch64:max) echo aarch64-neon-i8mm ;;
    armv7:cortex-a8) echo scalar ;;
    armv7:*) echo armv7-neon-vfpv4 ;;
  esac
}

# shellcheck disable=SC2086
arm_install_tools $targets

# ---- the x86-64 reference output ----
if [ ! -s "$f32_model" ]; then
  echo "test-arm: $f32_model is missing (scripts/fetch-models.sh derives it)" >&2
  exit 1
fi
make -s cli >/dev/null
reference=$(build/picolm "$f32_model" -p "$prompt" -n "$n_gen" -t 0 -j 2 2>/dev/null)
[ -n "$reference" ] || { echo "test-arm: the x86-64 CLI generated nothing" >&2; exit 1; }
scripts/check-exports.sh "${CARGO_TARGET_DIR:-target}/release/libpicolm.so"

sizes=()
ran=0
skipped=()
for t in $targets; do
  why=$(arm_target_unusable "$t")
  if [ -n "$why" ]; then
    skipped+=("$t: $why")
    continue
  fi
  triple=$(arm_triple "$t"); rt=$(arm_rust_target "$t"); qemu=$(arm_qemu "$t")
  arm_cargo_env "$t"

  # 1. Kernel unit tests on each CPU model (cargo runs the test binary through the qemu runner).
  for cpu in $(unit_cpus_of "$t"); do
    echo "== $t ($rt): kernel unit tests on $cpu"
    log=$(mktemp)
    if ! QEMU_CPU="$cpu" PICOLM_EXPECT_CPU_PATH="$(expect_path_of "$t" "$cpu")" cargo test --release -q -p picolm-kernels -p picolm-core --target "$rt" --lib -- --test-threads 2 quant simd \
        --nocapture >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; echo "test-arm: kernel tests failed for $t on $cpu" >&2; exit 1
    fi
    grep -oE "cpu path: .*|test result: .*" "$log" | sort -u
    rm -f "$log"
  done

  # 2. Cross build: library, header, pkg-config file and CLI, linked with GNU ld.
  echo "== $t: make cross TARGET=$triple"
  prefix="$root/build/cross/$triple"
  rm -rf "$prefix"
  make -s cross TARGET="$triple" PREFIX="$prefix" >/dev/null
  scripts/check-exports.sh "$prefix/lib/libpicolm.so" "$triple-"
  for f in include/picolm.h lib/libpicolm.a lib/pkgconfig/picolm.pc bin/picolm; do
    [ -s "$prefix/$f" ] || { echo "test-arm: make cross did not produce $f" >&2; exit 1; }
  done
  PKG_CONFIG_PATH="$prefix/lib/pkgconfig" sh -c "$triple-gcc -std=c11 -O2 \$(pkg-config --cflags picolm) \
    examples/c/stream.c $prefix/lib/libpicolm.a \$(pkg-config --static --libs-only-other --libs-only-l picolm \
    | sed 's/-lpicolm//') -o $prefix/stream-static"
  if "$triple-readelf" -d "$prefix/stream-static" | grep -q 'libpicolm'; then
    echo "test-arm: $t: the static example still needs libpicolm.so" >&2; exit 1
  fi
  strip_dir=$(mktemp -d)
  cp "$prefix/lib/libpicolm.so.0" "$prefix/lib/libpicolm.a" "$prefix/bin/picolm" "$strip_dir/"
  "$triple-strip" --strip-unneeded "$strip_dir/libpicolm.so.0" "$strip_dir/libpicolm.a"
  "$triple-strip" "$strip_dir/picolm"
  sizes+=("$(printf '%-8s %-36s %10s %10s %8s' "$t" "$rt" "$(stat -c %s "$strip_dir/libpicolm.so.0")" \
    "$(stat -c %s "$strip_dir/libpicolm.a")" "$(stat -c %s "$strip_dir/picolm")")")
  rm -rf "$strip_dir"

  # 3. The CLI end to end under qemu (the library is found through the CLI's rpath $ORIGIN/../lib).
  echo "== $t: greedy generation with the F32 model under $qemu -cpu $(cli_cpu_of "$t")"
  out=$(QEMU_CPU="$(cli_cpu_of "$t")" timeout 900 "$qemu" -L "/usr/$triple" "$prefix/bin/picolm" "$f32_model" \
    -p "$prompt" -n "$n_gen" -t 0 -j 2 2>"$prefix/cli.stderr") || {
    cat "$prefix/cli.stderr" >&2; echo "test-arm: the $t CLI failed under qemu" >&2; exit 1; }
  if [ "$out" != "$reference" ]; then
    printf 'test-arm: %s greedy output differs from x86-64:\n  x86-64: %q\n  %s: %q\n' "$t" "$reference" "$t" "$out" >&2
    exit 1
  fi
  printf '%s output = x86-64 output: %q\n' "$t" "$out"
  ran=$((ran + 1))
done

if [ ${#sizes[@]} -gt 0 ]; then
  echo "== stripped sizes (bytes)"
  printf '%-8s %-36s %10s %10s %8s\n' target rust-target libpicolm.so libpicolm.a picolm
  printf '%s\n' "${sizes[@]}"
fi
for s in "${skipped[@]}"; do echo "test-arm: skipped $s"; done
echo "test-arm: $ran passed, 0 failed, ${#skipped[@]} skipped"
