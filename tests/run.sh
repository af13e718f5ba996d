#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test (unit, integration, benchmark
# smoke runs) with CTest. Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j2 "$@"
