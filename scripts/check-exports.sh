#!/usr/bin/env bash
# Checks a built libpicolm.so: its soname is libpicolm.so.0 and the symbols it exports (defined dynamic symbols)
# are exactly the functions declared in include/picolm.h — all `picolm_*`, nothing of Rust's runtime or of the
# crates it links.
# Usage: scripts/check-exports.sh LIBPICOLM.so [TOOL_PREFIX]   (TOOL_PREFIX: e.g. aarch64-linux-gnu- for its nm and
# readelf; the host's binutils read every ELF target too, so it is optional)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lib="${1:?usage: check-exports.sh LIBPICOLM.so [TOOL_PREFIX]}"
prefix="${2:-}"
nm="${prefix}nm"
readelf="${prefix}readelf"
command -v "$nm" >/dev/null || nm=nm
command -v "$readelf" >/dev/null || readelf=readelf

soname=$("$readelf" -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libpicolm.so.0" ]; then
  echo "check-exports: $lib has soname '${soname:-<none>}', expected libpicolm.so.0" >&2
  exit 1
fi

want=$(grep -oE '\bpicolm_[a-z0-9_]+\(' "$root/include/picolm.h" | tr -d '(' | sort -u)
# `nm -D` prints versioned names as NAME@VERSION or NAME@@VERSION; the version node itself (if any) is absolute.
got=$("$nm" -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [ "$want" != "$got" ]; then
  echo "check-exports: the exported symbols of $lib differ from the functions of include/picolm.h" >&2
  diff <(echo "$want") <(echo "$got") | sed -n 's/^< /  missing: /p; s/^> /  extra:   /p' >&2
  exit 1
fi
echo "check-exports: $lib: soname $soname, exports exactly the $(echo "$got" | wc -l) functions of picolm.h"
