#!/usr/bin/env bash
# The README's "Size" table: for each target and feature set, the bytes of the stripped libpicolm.so, of
# libpicolm.a (as built, unstripped) and of the picolm CLI linked against libpicolm.a (stripped).
#
#   scripts/size-table.sh [TARGET...]        targets: x86_64 (this machine), aarch64, armv7 (default: all three)
#   SIZE_SETS='all|jinja json-schema|none'   feature sets, separated by '|' ("all": the default features,
#                                            "none": no optional feature); a set may end in " @z" (or another
#                                            opt-level) to build picolm-core, its kernels and the link-time
#                                            optimisation at that opt-level (make CORE_OPT=z KERNEL_OPT=z
#                                            LINK_OPT=z)
#   SIZE_LINK=1                              x86_64 rows: link with --icf=all and -z pack-relative-relocs, as
#                                            `make lib SIZE_LINK=1` (rust-lld; the features cell says "+link")
#
# Cross targets use the toolchains of scripts/arm-env.sh (GNU cross gcc and its C library; installed with apt-get
# when missing and possible); a target that cannot be built is reported and skipped. Each release build takes a few
# CPU-minutes; builds run with `nice -n 10` and CARGO_BUILD_JOBS (default 2). The table goes to stdout and to
# build/size/table.md. Every library is checked to export exactly the functions of include/picolm.h (the ABI does
# not depend on the feature set).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/arm-env.sh
. scripts/arm-env.sh

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64 aarch64 armv7)
IFS='|' read -r -a sets <<< "${SIZE_SETS:-all|jinja json-schema|none|all @z|none @z}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
static_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
out=build/size
mkdir -p "$out"
table="$out/table.md"

features_opts() {
  local set="${1% @*}"
  if [ "$set" != "$1" ]; then
    local opt="${1##* @}"
    case "$opt" in s | z) opt="\"$opt\"" ;; esac
    local crate
    for crate in picolm-core picolm-kernels picolm-ffi-api picolm-ffi; do
      echo "--config 'profile.release.package.$crate.opt-level=$opt'"
    done
  fi
  case "$set" in
    all) ;;
    none) echo "--no-default-features" ;;
    *) echo "--no-default-features --features ${set// /,}" ;;
  esac
}

rows=()
for t in "${targets[@]}"; do
  if [ "$t" = x86_64 ]; then
    rt=x86_64-unknown-linux-gnu; cc=${CC:-cc}; strip=strip; rel="$target_dir/release"; target_opt=()
  else
    arm_install_tools "$t"
    why=$(arm_target_unusable "$t")
    if [ -n "$why" ]; then
      echo "size-table: skipping $t: $why" >&2
      continue
    fi
    arm_cargo_env "$t"
    triple=$(arm_triple "$t"); rt=$(arm_rust_target "$t"); cc="$triple-gcc"; strip="$triple-strip"
    rel="$target_dir/$rt/release"; target_opt=(--target "$rt")
  fi
  for set in "${sets[@]}"; do
    echo "size-table: building $t ($rt), features: $set" >&2
    # shellcheck disable=SC2046
    label=$set; build="cargo build"; link_args=""
    if [ "$t" = x86_64 ] && [ "${SIZE_LINK:-0}" != 0 ]; then
      label="$set +link"; build="cargo rustc --lib"
      link_args="-- -C link-arg=-Wl,--icf=all -C link-arg=-Wl,-z,pack-relative-relocs"
    fi
    eval "nice -n 10 $build -q --release -p picolm-ffi ${target_opt[*]} $(features_opts "$set" | tr "\n" " ") $link_args"
    tag="$t-${label// /+}"; tag="${tag//@/opt-}"
    "$strip" -o "$out/libpicolm-$tag.so" "$rel/libpicolm.so"
    # The ABI is the same for every feature set: exactly the functions of picolm.h are exported.
    scripts/check-exports.sh "$out/libpicolm-$tag.so" >&2
    nice -n 10 "$cc" -std=c11 -O2 -Iinclude bindings/c/picolm.c "$rel/libpicolm.a" "${static_libs[@]}" -o "$out/picolm-$tag"
    "$strip" "$out/picolm-$tag"
    rows+=("| $t | $label | $(stat -c %s "$out/libpicolm-$tag.so") | $(stat -c %s "$rel/libpicolm.a") | $(stat -c %s "$out/picolm-$tag") |")
    echo "size-table: ${rows[-1]}" >&2
  done
done

{
  echo "| target | features | libpicolm.so (stripped) | libpicolm.a | picolm CLI, static libpicolm (stripped) |"
  echo "|---|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$table"
