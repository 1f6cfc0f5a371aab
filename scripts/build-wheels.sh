#!/usr/bin/env bash
# Builds the picolm Python wheels for Linux PCs and Raspberry Pi OS into dist/:
#
#   scripts/build-wheels.sh [ARCH...]     ARCH: x86_64, aarch64 (64-bit Pi OS), armv7l (32-bit Pi OS); default all
#
# One abi3 wheel per architecture (pyo3's abi3-py39: any CPython >= 3.9, so Python 3.11 on Pi OS bookworm) with the
# platform tag manylinux_2_17 (manylinux2014): glibc >= 2.17, which Raspberry Pi OS bookworm (glibc 2.36), bullseye
# (2.31) and every current Linux PC accept. The cross builds link with zig (`maturin build --zig`, the ziglang
# package from PyPI), which links against the chosen glibc version's symbols, so no cross gcc or target sysroot is
# needed. armv7l is Rust's armv7-unknown-linux-gnueabihf with NEON, tuned for the Cortex-A7 (the Pi 2's core; the
# Pi 3/4/5 and Zero 2W run the same ARMv7-A + NEON + VFPv4 code in 32-bit mode): maturin does not know the
# thumbv7neon target that `make cross` uses, and the Rust target's spec turns NEON off whatever -C target-cpu says,
# so NEON comes from -C target-feature=+neon, which rustc reports as an "unstable feature" warning (it is what
# thumbv7neon turns on). ARMv6 boards (Pi 1, Zero) are not supported. A RUSTFLAGS of the caller's replaces these.
#
# The build tools (maturin, ziglang, auditwheel, at the versions below) are pip-installed into the venv build/wheel-venv,
# never into the system Python; missing Rust targets are added with rustup. Each wheel is checked with
# `auditwheel show`: its shared library may use no glibc symbol newer than its tag allows and may link no library
# outside the manylinux policy. Prints a table: file, platform tag (from auditwheel), size.
# PICOLM_WHEEL_COMPAT chooses another manylinux tag (e.g. manylinux_2_28); it must stay <= glibc 2.36 (Pi OS bookworm).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

compat="${PICOLM_WHEEL_COMPAT:-manylinux_2_17}"
venv="$root/build/wheel-venv"
dist="$root/dist"
tools=("maturin==1.16.0" "ziglang==0.17.1" "auditwheel==6.8.2")
die() { echo "build-wheels: $*" >&2; exit 1; }

# Rust target of a wheel architecture.
rust_target() {
  case "$1" in
    x86_64) echo x86_64-unknown-linux-gnu ;;
    aarch64) echo aarch64-unknown-linux-gnu ;;
    armv7l) echo armv7-unknown-linux-gnueabihf ;;
  esac
}
# Extra rustc flags of a wheel architecture (see above).
rust_flags() { case "$1" in armv7l) echo "-C target-cpu=cortex-a7 -C target-feature=+neon" ;; esac; }

case "$compat" in
  manylinux_2_[0-9]|manylinux_2_[12][0-9]|manylinux_2_3[0-6]) ;;
  *) die "PICOLM_WHEEL_COMPAT=$compat: give manylinux_2_N with N <= 36 (Raspberry Pi OS bookworm has glibc 2.36)" ;;
esac
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64 armv7l)
for a in "${arches[@]}"; do
  [ -n "$(rust_target "$a")" ] || die "unknown architecture '$a' (x86_64, aarch64, armv7l)"
done

# ---- the build tools, in a venv
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3 python3-venv)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
# The stamp records the versions installed, so that changing them above installs them again.
stamp="$venv/picolm-wheel-tools.txt"
if [ "$(cat "$stamp" 2>/dev/null)" != "${tools[*]}" ]; then
  echo "build-wheels: installing ${tools[*]} into $venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${tools[@]}" || die "pip install ${tools[*]} failed"
  echo "${tools[*]}" >"$stamp"
fi

# ---- the wheels
mkdir -p "$dist"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
built=()
for a in "${arches[@]}"; do
  rt=$(rust_target "$a")
  if ! rustup target list --installed 2>/dev/null | grep -qx "$rt"; then
    command -v rustup >/dev/null || die "the Rust target $rt is missing and there is no rustup to add it"
    rustup target add "$rt" >/dev/null 2>&1 || die "rustup target add $rt failed"
  fi
  # A wheel of this version and architecture from an earlier run would be listed as this run's.
  rm -f "$dist"/picolm-"$version"-*_"$a".whl
  echo "== $a ($rt): maturin build --zig --compatibility $compat" >&2
  log="$root/build/wheel-$a.log"
  flags=()
  [ -z "$(rust_flags "$a")" ] || flags=("CARGO_TARGET_$(echo "$rt" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=$(rust_flags "$a")")
  if ! env "${flags[@]}" PATH="$venv/bin:$PATH" nice -n 10 maturin build --release --zig --compatibility "$compat" --target "$rt" \
      --out "$dist" -j 2 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "maturin build for $a failed (log: $log)"
  fi
  whl=$(ls "$dist"/picolm-"$version"-*_"$a".whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "maturin wrote no $a wheel into $dist (log: $log)"
  built+=("$whl")
done

# ---- auditwheel: the tag each wheel's shared library actually allows
rows=()
want_minor=${compat#manylinux_2_}
for whl in "${built[@]}"; do
  show=$("$venv/bin/auditwheel" show "$whl" 2>&1) || { echo "$show" >&2; die "auditwheel show failed on $whl"; }
  # "... is consistent with the following platform tag: "manylinux_2_17_aarch64"." (the most compatible tag)
  tag=$(echo "$show" | tr -d '\n' | grep -oE 'consistent with the following platform tag: *"[^"]+"' \
    | grep -oE '"[^"]+"' | tr -d '"' | head -n1)
  [ -n "$tag" ] || { echo "$show" >&2; die "auditwheel names no platform tag for $whl"; }
  case "$tag" in
    manylinux_2_*) ;;
    *) echo "$show" >&2; die "$whl: auditwheel allows only $tag, not a manylinux tag" ;;
  esac
  minor=$(echo "$tag" | sed -E 's/^manylinux_2_([0-9]+)_.*/\1/')
  [ "$minor" -le "$want_minor" ] || { echo "$show" >&2; die "$whl needs glibc 2.$minor, more than $compat"; }
  case "$(basename "$whl")" in
    *"-cp39-abi3-"*"$compat"_*) ;;
    *) die "$whl is not named as a cp39-abi3 $compat wheel" ;;
  esac
  rows+=("$(printf '%-78s %-24s %9s' "$(basename "$whl")" "$tag" "$(stat -c %s "$whl")")")
done
printf '%-78s %-24s %9s\n' "wheel (dist/)" "auditwheel tag" "bytes"
printf '%s\n' "${rows[@]}"
