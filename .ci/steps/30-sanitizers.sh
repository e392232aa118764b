#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (any report aborts the test):
# a second build directory configured with -DSHATTER_SANITIZE=ON (at -O1 -g1 to keep the build
# short), every test_<area> executable built and run. Tests tagged [slow] are excluded
# (sanitized code runs several times slower); the package test is not run (it configures
# consumer projects, no library code runs).
#   bash .ci/steps/30-sanitizers.sh [build-dir]          (default: build-sanitize)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-build-sanitize}
jobs=$(nproc)
start=$(date +%s)
# Test discovery runs the executables at build time, so the options apply from here on.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=2
# Ninja builds the several test targets in parallel (CMake's Makefiles build them one by one).
gen=()
if command -v ninja >/dev/null && [ ! -f "$dir/Makefile" ]; then gen=(-G Ninja); fi
cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -g1" \
  -DSHATTER_SANITIZE=ON -DSHATTER_BUILD_EXAMPLES=OFF -DSHATTER_BUILD_BENCH=OFF >/dev/null
targets=$(cmake --build "$dir" --target help |
  sed -n 's/^\(\.\.\. \)\{0,1\}\(test_[A-Za-z0-9_]*\)\(: .*\)\{0,1\}$/\2/p' | sort -u)
[ -n "$targets" ] || { echo "sanitizers: no test targets found"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$dir" -j"$jobs" --target $targets
built=$(date +%s)
status=0
for t in $targets; do
  exe="$dir/tests/$t"
  [ -x "$exe" ] || continue
  t0=$(date +%s)
  if "$exe" "~[slow]" >"$dir/$t.log" 2>&1; then
    echo "sanitizers: $t ok: $(grep -E '^(All tests passed|test cases:)' "$dir/$t.log" | tail -1) ($(( $(date +%s) - t0 )) s)"
  else
    echo "sanitizers: $t FAILED"
    tail -60 "$dir/$t.log"
    status=1
  fi
done
echo "sanitizers: build $((built - start)) s, tests $(( $(date +%s) - built )) s"
exit $status
