#!/usr/bin/env bash
# Follows the README's "C library" section verbatim: extracts the shell block after the `test-install` marker and
# runs it at the repository root with HOME set to a scratch directory, so `make install PREFIX=$HOME/.local` is a
# non-system prefix, and with no LD_LIBRARY_PATH or PKG_CONFIG_PATH from outside. Then checks that the programs
# ran, print text, and use the installed libpicolm.so (the shared one) or none (the static one).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
block="$(awk '/<!-- test-install:/ { marked = 1; next } marked && /^```sh$/ { inside = 1; next }
              inside && /^```$/ { exit } inside { print }' README.md)"
if [ -z "$block" ]; then
  echo "test-readme-install: no shell block after the test-install marker in README.md" >&2
  exit 1
fi
home="$root/build/readme-home"
rm -rf "$home" build/stream build/stream-static
mkdir -p "$home"
# cargo and rustup find their files through HOME unless told where they are.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
unset LD_LIBRARY_PATH PKG_CONFIG_PATH
echo "== README C section, verbatim, HOME=$home:"
printf '%s\n' "$block"
out="$(HOME="$home" sh -e -c "$block")"
printf '%s\n' "$out" | tail -n 3
fail() { echo "test-readme-install: $*" >&2; exit 1; }
[ -n "$(printf '%s' "$out" | tr -d '[:space:]')" ] || fail "the programs printed nothing"
for bin in build/stream build/stream-static; do [ -x "$bin" ] || fail "$bin was not built"; done
lib="$(ldd build/stream | awk '/libpicolm/ { print $3 }')"
[ "$lib" = "$home/.local/lib/libpicolm.so.0" ] || fail "build/stream uses '$lib', not the installed library"
! ldd build/stream-static | grep -q libpicolm || fail "build/stream-static links libpicolm.so"
echo "README C section: OK (shared program uses $lib, static program has no libpicolm.so)"
