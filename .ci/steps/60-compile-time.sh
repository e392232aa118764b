#!/usr/bin/env bash
# Compile time of a user's program: one translation unit that includes the umbrella header
# shatter/shatter.hpp, builds a looks-linear CReLU MLP and trains it with fit (softmax
# cross-entropy, SGD, float), compiled and linked at -O2 with g++ (OpenMP on, as the CMake target
# uses it), twice:
#   header-only                      target 15 s CPU, fails above the limit (default 30 s)
#   header-only, keeping a run       the same unit with run_options (a run directory, so the
#                                    checkpoint code is compiled too); same target and limit
#   with shatter::compiled           target 6 s CPU, fails above the limit (default 12 s)
#     (-DSHATTER_COMPILED, linked with the companion library: build/libshatter_compiled.a from
#      .ci/test's build, or compiled here first, untimed)
# The limits are twice the targets, a margin for a busy machine.
#   bash .ci/steps/60-compile-time.sh [header-only-limit-s [compiled-limit-s]]
set -euo pipefail
cd "$(dirname "$0")/../.."
limit_header=${1:-30}
limit_compiled=${2:-12}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/tu.cpp" <<'CPP'
#include <shatter/shatter.hpp>

#include <cstdio>

int main() {
  shatter::rng g(1);
  shatter::mlp_spec s;
  s.in = 32;
  s.width = 16;
  s.hidden_layers = 4;
  s.out = 10;
  auto net = shatter::looks_linear_mlp<float>(s, g);
  shatter::dataset<float> train;
  train.x = shatter::matrix<float>::Random(32, 64);
  train.labels.assign(64, 3);
  shatter::softmax_cross_entropy<float> ce;
  shatter::sgd<float> opt(net.parameters(), {0.1});
  shatter::fit_options o;
  o.epochs = 2;
  o.batch_size = 16;
  const auto r = shatter::fit(net, ce, opt, train, o);
  const auto labels = shatter::classify(net, train);
  std::printf("%lld steps, class of sample 0: %d\n", static_cast<long long>(r.record.step),
              int(labels[0]));
  return r.record.step == 8 && labels[0] == 3 ? 0 : 1;
}
CPP
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
cxx=${CXX:-g++}
# shellcheck disable=SC2206
flags=(-std=c++17 -O2 -fopenmp -Iinclude $eigen)

lib=build/libshatter_compiled.a
if [ ! -f "$lib" ] || [ -n "$(find include src -newer "$lib" -name '*.?pp' | head -1)" ]; then
  echo "compile-time: compiling the companion library first (not timed)"
  "$cxx" "${flags[@]}" -c src/compiled.cpp -o "$tmp/compiled.o"
  ar rcs "$tmp/libshatter_compiled.a" "$tmp/compiled.o"
  lib=$tmp/libshatter_compiled.a
fi

to_ms() {  # "13.30" -> 13300
  local i=${1%%.*} f=${1#*.}
  [ "$f" = "$1" ] && f=0
  f=$(printf '%-3.3s' "$f")
  echo $(( 10#$i * 1000 + 10#${f// /0} ))
}
failed=0
# measure NAME LIMIT COMMAND...: runs the compiler under /usr/bin/time (CPU = user + sys: the
# compiler is single-threaded, so this is what the build costs whatever else the machine does),
# runs the program, prints the time and checks the limit.
measure() {
  local name=$1 limit=$2
  shift 2
  /usr/bin/time -f '%U %S %e' -o "$tmp/time" "$@"
  "$tmp/tu" > /dev/null || { echo "compile-time: the $name program failed"; exit 1; }
  local user sys wall
  read -r user sys wall < "$tmp/time"
  local cpu_ms=$(( $(to_ms "$user") + $(to_ms "$sys") ))
  printf 'compile-time: %-26s %d.%d s CPU (user %s + sys %s), %s s wall; limit %s s\n' \
    "$name" $((cpu_ms / 1000)) $((cpu_ms % 1000 / 100)) "$user" "$sys" "$wall" "$limit"
  if (( cpu_ms > limit * 1000 )); then
    echo "compile-time: $name FAILED, above the limit"
    failed=1
  fi
}
echo "compile-time: shatter.hpp + a network trained with fit (float), $cxx -O2, compile and link"
measure "header-only" "$limit_header" "$cxx" "${flags[@]}" "$tmp/tu.cpp" -o "$tmp/tu" -lz
sed 's|shatter::fit_options o;|shatter::run_options o;\n  o.run_dir = RUN_DIR;|' "$tmp/tu.cpp" \
  > "$tmp/tu_run.cpp"
grep -q 'o.run_dir = RUN_DIR' "$tmp/tu_run.cpp" || { echo "compile-time: no run_options unit"; exit 1; }
measure "header-only, keeping a run" "$limit_header" "$cxx" "${flags[@]}" \
  -DRUN_DIR="\"$tmp/run\"" "$tmp/tu_run.cpp" -o "$tmp/tu" -lz
measure "with shatter::compiled" "$limit_compiled" "$cxx" "${flags[@]}" -DSHATTER_COMPILED \
  "$tmp/tu.cpp" -o "$tmp/tu" "$lib" -lz
exit $failed
