#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets (clang, ASan + UBSan) for every file parser (safetensors,
# checkpoints, IDX, CIFAR-10) and runs each for a bounded time seeded with valid files.
# FUZZ_SECONDS per target (default 10: about 40 s of fuzzing plus about a minute of building).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
bash fuzz/build.sh build-fuzz
built=$(date +%s)
bash fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-10}"
echo "fuzz: build $((built - start)) s, runs $(( $(date +%s) - built )) s"
