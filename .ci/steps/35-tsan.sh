#!/usr/bin/env bash
# ThreadSanitizer on the thread-safety test (tests/robust/threads_test.cpp): independent networks
# trained on two threads at once, with and without the library's worker pool. Built with clang
# and without OpenMP (libgomp is not instrumented, which would give false reports).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build-tsan
mkdir -p "$out"
start=$(date +%s)
cxx=$(command -v clang++-14 || command -v clang++)
"$cxx" -std=c++17 -O1 -g1 -fsanitize=thread -pthread -Iinclude -I/usr/include/eigen3 \
  -Wno-unknown-pragmas tests/robust/threads_test.cpp tests/catch_main.cpp -o "$out/threads_tsan"
built=$(date +%s)
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "$out/threads_tsan" "[threads]"
echo "tsan: build $((built - start)) s, run $(( $(date +%s) - built )) s"
