#!/usr/bin/env bash
# Runs HERE (a Debian bookworm machine with network access), before ci/gpu/check.sh runs on a GPU
# machine that cannot download anything. Puts into .gpu-deps/ (ignored by git; carry it with the
# working tree, it is a few MB):
#   debs/             the Debian .deb files of the build dependencies a PyTorch machine usually lacks
#                     (Google Benchmark, GoogleTest, fmt, nlohmann-json, PCRE2, utf8proc, libssl-dev,
#                     pkg-config), fetched with `apt-get download`; check.sh unpacks them with
#                     `dpkg -x` into .gpu-deps/prefix, never into /
#   qwen2-tokenizer/  the Qwen2 tokenizer (tokenizer.json, tokenizer_config.json) for the 1.5B preset's
#                     protocol and the notebook's code, from $TSTAR_QWEN2_TOKENIZER
#                     (default /work/shared/fixtures/qwen2-tokenizer)
# Idempotent; prints the folder's size at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu-deps
mkdir -p "$out/debs"

# Each -dev package with the runtime library it needs; -dev packages whose CMake or pkg-config files
# name a sibling (GoogleTest's config names gmock) bring that too.
packages=(
  libbenchmark-dev libbenchmark1debian
  libgtest-dev libgmock-dev
  libfmt-dev libfmt9
  nlohmann-json3-dev
  libpcre2-dev libpcre2-8-0
  libutf8proc-dev libutf8proc2
  libssl-dev libssl3
  pkgconf pkgconf-bin libpkgconf3
)
missing=()
for p in "${packages[@]}"; do
  compgen -G "$out/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci/gpu/prepare.sh: apt-get download ${missing[*]}"
  apt-get update -qq
  (cd "$out/debs" && apt-get download "${missing[@]}")
fi

tokenizer_source=${TSTAR_QWEN2_TOKENIZER:-/work/shared/fixtures/qwen2-tokenizer}
mkdir -p "$out/qwen2-tokenizer"
for f in tokenizer.json tokenizer_config.json; do
  if [[ ! -f $out/qwen2-tokenizer/$f ]]; then
    if [[ ! -f $tokenizer_source/$f ]]; then
      echo "ci/gpu/prepare.sh: no $tokenizer_source/$f (set TSTAR_QWEN2_TOKENIZER to a Qwen2 tokenizer directory)" >&2
      exit 1
    fi
    cp "$tokenizer_source/$f" "$out/qwen2-tokenizer/$f"
  fi
done

ls "$out/debs"
du -sh "$out"
echo "ci/gpu/prepare.sh: done; carry .gpu-deps (and nothing else is needed) to the GPU machine"
