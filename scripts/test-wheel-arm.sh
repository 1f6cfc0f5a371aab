#!/usr/bin/env bash
# Tests the Raspberry Pi OS wheels for real, the way a Pi user installs them:
#   1. builds the wheels with scripts/build-wheels.sh (x86_64 and the architectures tested; cargo rebuilds only what
#      changed) and prints their tags and sizes;
#   2. makes a Raspberry Pi OS-like sysroot per architecture from Debian bookworm's own packages (python3.11,
#      libpython3.11-stdlib, libc6 2.36, ... for arm64 or armhf): apt-get with a private state directory under
#      build/ (the system's apt configuration and architectures are not changed) downloads them, `dpkg-deb -x`
#      unpacks them into build/sysroot-arm64 / build/sysroot-armhf;
#   3. under qemu-user with that sysroot (`qemu-aarch64 -L build/sysroot-arm64`, Cortex-A53 as on a Pi Zero 2W / Pi 3;
#      `qemu-arm -L build/sysroot-armhf`, Cortex-A7 as on a Pi 2): creates a venv with the board's python3.11 and
#      installs the wheel with the board's pip (Debian's pip wheel), which checks the wheel's tags against that
#      interpreter and its glibc, as on the Pi;
#   4. runs a short greedy generation (temperature 0) with SmolLM2-135M-Instruct Q4_1 (scripts/fetch-models.sh)
#      through the installed package and checks that its text equals the x86_64 wheel's, installed in a venv of
#      this machine's python3.
# Every command of steps 3 and 4 is printed with its output (the install transcript).
#
# PICOLM_WHEEL_ARCHES="aarch64 armv7l" chooses the architectures. Missing tools (qemu-user) are installed with
# apt-get when possible (root; PICOLM_ARM_INSTALL=0 never installs); the test is skipped, with the reason, only when
# they cannot be. Models: $PICOLM_MODELS or ./models.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
arches="${PICOLM_WHEEL_ARCHES:-aarch64 armv7l}"
prompt="The capital of France is"
n_gen=8
work="$root/build/wheel-test"
# The board's packages: the interpreter, its standard library, the unwinder a Rust library needs, and pip.
board_pkgs=(python3.11-minimal libpython3.11-stdlib libgcc-s1 python3-pip-whl)

die() { echo "test-wheel-arm: $*" >&2; exit 1; }
debarch_of() { case "$1" in aarch64) echo arm64 ;; armv7l) echo armhf ;; esac; }
qemu_of() { case "$1" in aarch64) echo qemu-aarch64 ;; armv7l) echo qemu-arm ;; esac; }
cpu_of() { case "$1" in aarch64) echo cortex-a53 ;; armv7l) echo cortex-a7 ;; esac; }
# Prints a command (paths relative to the repository) and runs it: the transcript.
run() {
  local shown
  shown=$(printf ' %q' "$@")
  echo "\$${shown//$root\//}" >&2
  "$@"
}

for a in $arches; do
  [ -n "$(debarch_of "$a")" ] || die "unknown architecture '$a' in PICOLM_WHEEL_ARCHES (aarch64, armv7l)"
done

# ---- tools: qemu-user, apt-get and dpkg-deb (for the sysroots)
skip() {
  echo "test-wheel-arm: skipped: $*"
  echo "test-wheel-arm: 0 passed, 0 failed, 1 skipped"
  exit 0
}
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || skip "no apt-get/dpkg-deb to fetch Debian's arm64/armhf Python packages (a Debian or Ubuntu machine is needed)"
missing=""
for a in $arches; do command -v "$(qemu_of "$a")" >/dev/null || missing=qemu-user; done
if [ -n "$missing" ]; then
  if [ "${PICOLM_ARM_INSTALL:-1}" = 0 ]; then
    skip "PICOLM_ARM_INSTALL=0 and qemu-user is missing"
  elif [ "$(id -u)" != 0 ]; then
    skip "not root, cannot install qemu-user (as root: apt-get install qemu-user)"
  fi
  echo "test-wheel-arm: installing qemu-user" >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user >/dev/null; }; } \
    || skip "apt-get could not install qemu-user"
fi

# ---- the model and the wheels
models=$(scripts/fetch-models.sh)
model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -s "$model" ] || die "$model is missing (scripts/fetch-models.sh fetches it)"
# shellcheck disable=SC2086
scripts/build-wheels.sh x86_64 $arches
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
wheel_of() {
  local w
  w=$(ls "$root"/dist/picolm-"$version"-cp39-abi3-*_"$1".whl 2>/dev/null | head -n1)
  [ -n "$w" ] || die "no $1 wheel in dist/ after scripts/build-wheels.sh"
  echo "$w"
}

mkdir -p "$work"
# The generation, run by each interpreter from $work (so that only the installed package can be imported).
gen_py="$work/generate.py"
cat >"$gen_py" <<'EOF'
import platform, sys, sysconfig
import picolm
print(f"picolm {picolm.__version__} from {picolm.__file__}", file=sys.stderr)
print(f"python {platform.python_version()} on {platform.machine()}, {sysconfig.get_platform()}, "
      f"glibc {platform.libc_ver()[1]}", file=sys.stderr)
with picolm.Model(sys.argv[1], n_ctx=64, n_threads=2) as m:
    sys.stdout.write(m.generate(sys.argv[2], max_tokens=int(sys.argv[3]), temperature=0.0))
EOF

# ---- the x86_64 reference: the x86_64 wheel in a venv of this machine's python3
echo "== x86_64: install the wheel into a venv and generate"
x86_venv="$work/venv-x86_64"
rm -rf "$x86_venv"
run python3 -m venv "$x86_venv"
run "$x86_venv/bin/python" -m pip install --isolated -q --no-index --no-deps "$(wheel_of x86_64)"
reference=$(cd "$work" && run "$x86_venv/bin/python" "$gen_py" "$model" "$prompt" "$n_gen")
[ -n "$reference" ] || die "the x86_64 wheel generated nothing"
printf 'x86_64 output: %q\n' "$reference"

# ---- the board sysroot: Debian bookworm's packages for DEBARCH unpacked into DIR
# apt-get runs with its own state, cache and source list under build/apt-DEBARCH: the machine's apt configuration is
# not changed (no dpkg --add-architecture).
make_sysroot() {
  local debarch="$1" dir="$2" aptdir="$root/build/apt-$1" opts names stamp
  stamp="$dir/.picolm-sysroot"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${board_pkgs[*]}" ]; then return 0; fi
  rm -rf "$dir" "$aptdir"
  mkdir -p "$aptdir/state/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/sources.d" "$aptdir/debs"
  : >"$aptdir/state/status"
  cat >"$aptdir/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
  [ -s /usr/share/keyrings/debian-archive-keyring.gpg ] \
    || die "Debian's archive keyring is missing (apt-get install debian-archive-keyring)"
  opts=(-q -o "APT::Architecture=$debarch" -o "APT::Architectures::=$debarch" -o "Dir::State=$aptdir/state"
    -o "Dir::State::status=$aptdir/state/status" -o "Dir::Cache=$aptdir/cache"
    -o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=$aptdir/sources.d"
    -o Debug::NoLocking=1)
  echo "test-wheel-arm: downloading Debian bookworm $debarch packages for $dir" >&2
  apt-get "${opts[@]}" update >"$aptdir/update.log" 2>&1 \
    || { cat "$aptdir/update.log" >&2; die "apt-get update for $debarch failed"; }
  # The packages and everything they depend on (an empty dpkg status: nothing counts as installed).
  names=$(apt-get "${opts[@]}" install -s --no-install-recommends "${board_pkgs[@]}" | awk '/^Inst /{print $2}')
  [ -n "$names" ] || die "apt-get found no $debarch packages for ${board_pkgs[*]}"
  # shellcheck disable=SC2086
  (cd "$aptdir/debs" && apt-get "${opts[@]}" download $names >"$aptdir/download.log" 2>&1) \
    || { cat "$aptdir/download.log" >&2; die "apt-get download for $debarch failed"; }
  mkdir -p "$dir"
  for deb in "$aptdir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  [ -x "$dir/usr/bin/python3.11" ] || die "the $debarch packages gave no usr/bin/python3.11"
  rm -rf "$aptdir"
  echo "${board_pkgs[*]}" >"$stamp"
}

passed=0
for a in $arches; do
  debarch=$(debarch_of "$a"); qemu=$(qemu_of "$a"); sysroot="$root/build/sysroot-$debarch"
  make_sysroot "$debarch" "$sysroot"
  export QEMU_CPU; QEMU_CPU=$(cpu_of "$a")
  q=("$qemu" -L "$sysroot")
  venv="$work/venv-$a"
  rm -rf "$venv"
  echo "== $a: install the wheel with Debian bookworm's $debarch python3.11 and pip under $qemu -cpu $QEMU_CPU"
  # No binfmt_misc here: pip cannot start the venv's interpreter itself, so the venv is made without pip and
  # Debian's pip wheel runs in it (python pip.whl/pip: pip's supported way to run from its wheel). --isolated: this
  # machine's pip configuration and PIP_* variables do not apply.
  run "${q[@]}" "$sysroot/usr/bin/python3.11" -m venv --without-pip "$venv"
  pip_whl=$(ls "$sysroot"/usr/share/python-wheels/pip-*.whl | head -n1)
  run "${q[@]}" "$venv/bin/python3" "$pip_whl/pip" install --isolated --no-index --no-deps \
    "$(wheel_of "$a")"
  out=$(cd "$work" && run "${q[@]}" "$venv/bin/python3" "$gen_py" "$model" "$prompt" "$n_gen") \
    || die "the $a wheel failed under $qemu"
  unset QEMU_CPU
  if [ "$out" != "$reference" ]; then
    printf 'test-wheel-arm: %s output differs from x86_64:\n  x86_64: %q\n  %s: %q\n' "$a" "$reference" "$a" "$out" >&2
    exit 1
  fi
  printf '%s output = x86_64 output: %q\n' "$a" "$out"
  passed=$((passed + 1))
done
echo "test-wheel-arm: $passed passed, 0 failed"
