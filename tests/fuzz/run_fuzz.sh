#!/usr/bin/env bash
# Builds the GS1 parser fuzz target with clang's libFuzzer (+ ASan, UBSan) and runs it briefly.
# Usage: run_fuzz.sh SOURCE_DIR OUT_DIR [SECONDS]
# Exits non-zero if the build fails or the fuzzer finds a crash, a sanitizer report, a timeout or
# a violated property (the crashing input is left in OUT_DIR as crash-* / timeout-* / oom-*).
# Needs clang-14 and libclang-rt-14-dev (deploy/install-deps.sh installs them).
set -euo pipefail

src=${1:?usage: run_fuzz.sh SOURCE_DIR OUT_DIR [SECONDS]}
out=${2:?usage: run_fuzz.sh SOURCE_DIR OUT_DIR [SECONDS]}
secs=${3:-20}

cxx=${DEPOT_FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  cxx=$(command -v clang++-14 || command -v clang++ || true)
fi
if [ -z "$cxx" ]; then
  echo "run_fuzz: clang++ not found (install clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi

mkdir -p "$out/gs1_corpus"
bin="$out/gs1_fuzz"
# Rebuild only when a source is newer than the binary.
if [ ! -x "$bin" ] || [ -n "$(find "$src/common/gs1.cc" "$src/common/gs1.h" \
      "$src/tests/fuzz/gs1_fuzz.cc" "$0" -newer "$bin" 2>/dev/null)" ]; then
  echo "run_fuzz: building $bin with $cxx"
  # shellcheck disable=SC2046
  "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$src" "$src/common/gs1.cc" "$src/tests/fuzz/gs1_fuzz.cc" -o "$bin.tmp" \
    $(pkg-config --libs absl_statusor absl_strings)
  mv "$bin.tmp" "$bin"
fi

# New inputs go to the first directory (in the build tree); the checked-in seeds are read only.
start=$(date +%s)
"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=512 \
  -dict="$src/tests/fuzz/gs1.dict" -artifact_prefix="$out/" -print_final_stats=1 \
  "$out/gs1_corpus" "$src/tests/fuzz/corpus/gs1"
echo "run_fuzz: no crash in $(( $(date +%s) - start ))s"
