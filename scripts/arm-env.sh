# Shared by scripts/test-arm.sh and scripts/bench-arm.sh (sourced, not run): the board targets, their toolchains,
# and installing what is missing.
#
# Targets: aarch64 (64-bit Raspberry Pi OS), armv7 (32-bit Raspberry Pi OS, NEON), riscv64 (RV64GC boards).

# GNU triple of the cross toolchain.
arm_triple() { case "$1" in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; riscv64) echo riscv64-linux-gnu ;; esac; }
# Debian architecture (for libc6-dev-ARCH-cross).
arm_debarch() { case "$1" in aarch64) echo arm64 ;; armv7) echo armhf ;; riscv64) echo riscv64 ;; esac; }
# Rust target; armv7 is thumbv7neon: see "Cross builds" in the Makefile.
arm_rust_target() {
  case "$1" in
    aarch64) echo aarch64-unknown-linux-gnu ;;
    armv7) echo thumbv7neon-unknown-linux-gnueabihf ;;
    riscv64) echo riscv64gc-unknown-linux-gnu ;;
  esac
}
# qemu-user binary.
arm_qemu() { case "$1" in aarch64) echo qemu-aarch64 ;; armv7) echo qemu-arm ;; riscv64) echo qemu-riscv64 ;; esac; }

# Debian packages missing for the targets given as arguments (none: prints nothing).
arm_missing_pkgs() {
  local pkgs=() t triple
  command -v qemu-aarch64 >/dev/null && command -v qemu-arm >/dev/null && command -v qemu-riscv64 >/dev/null \
    || pkgs+=(qemu-user)
  for t in "$@"; do
    triple=$(arm_triple "$t")
    command -v "$triple-gcc" >/dev/null || pkgs+=("gcc-$triple")
    [ -e "/usr/$triple/include/stdio.h" ] || pkgs+=("libc6-dev-$(arm_debarch "$t")-cross")
  done
  echo "${pkgs[@]}"
}

# Installs the Debian packages the targets need when possible. Sets ARM_INSTALL_REASON to why it could not (empty
# when nothing was missing or everything was installed). PICOLM_ARM_INSTALL=0 never installs.
arm_install_tools() {
  ARM_INSTALL_REASON=""
  local pkgs
  pkgs=$(arm_missing_pkgs "$@")
  [ -n "$pkgs" ] || return 0
  if [ "${PICOLM_ARM_INSTALL:-1}" = 0 ]; then
    ARM_INSTALL_REASON="PICOLM_ARM_INSTALL=0 and $pkgs missing"
  elif [ "$(id -u)" != 0 ]; then
    ARM_INSTALL_REASON="not root, cannot install $pkgs (as root: apt-get install $pkgs)"
  elif ! command -v apt-get >/dev/null; then
    ARM_INSTALL_REASON="no apt-get to install $pkgs (install qemu-user and the GNU cross compilers)"
  else
    echo "arm-env: installing $pkgs" >&2
    # shellcheck disable=SC2086
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >/dev/null; }; }; then
      ARM_INSTALL_REASON="apt-get could not install $pkgs"
    fi
  fi
}

# Checks that target $1 can be built and run; prints why not (nothing when it can). Adds the Rust target with
# rustup when missing.
arm_target_unusable() {
  local t="$1" triple rt qemu
  triple=$(arm_triple "$t"); rt=$(arm_rust_target "$t"); qemu=$(arm_qemu "$t")
  if [ -z "$triple" ]; then echo "unknown target '$t' (aarch64, armv7, riscv64)"; return; fi
  if ! command -v "$triple-gcc" >/dev/null || ! command -v "$qemu" >/dev/null || [ ! -e "/usr/$triple/include/stdio.h" ]; then
    echo "${ARM_INSTALL_REASON:-$triple-gcc, its C library or $qemu is missing}"; return
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx "$rt"; then
    if ! command -v rustup >/dev/null; then
      echo "the Rust target $rt is not installed and there is no rustup to add it"; return
    fi
    rustup target add "$rt" >/dev/null 2>&1 || { echo "rustup target add $rt failed"; return; }
  fi
}

# Exports cargo's linker (the GNU cross gcc, so GNU ld) and qemu runner for target $1.
arm_cargo_env() {
  local t="$1" triple rt var
  triple=$(arm_triple "$t"); rt=$(arm_rust_target "$t")
  var="$(echo "$rt" | tr 'a-z-' 'A-Z_')"
  export "CARGO_TARGET_${var}_LINKER=$triple-gcc" "CARGO_TARGET_${var}_RUNNER=$(arm_qemu "$t") -L /usr/$triple"
}
