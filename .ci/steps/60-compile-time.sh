#!/usr/bin/env bash
# Compile time: one translation unit that includes the umbrella header shatter/shatter.hpp and
# instantiates a network (a looks-linear CReLU MLP trained one step with softmax cross-entropy and
# SGD, in float and double) is compiled and linked at -O2 (g++, OpenMP on, as the CMake target
# uses it). Prints the time; fails above the limit (default 40 s, twice the 20 s target).
#   bash .ci/steps/60-compile-time.sh [limit-seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
limit=${1:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/tu.cpp" <<'CPP'
#include <shatter/shatter.hpp>

#include <cstdio>

template <class T>
double one_step() {
  shatter::rng g(1);
  shatter::mlp_spec s;
  s.in = 32;
  s.width = 16;
  s.depth = 4;
  s.out = 10;
  auto net = shatter::looks_linear_mlp<T>(s, g);
  shatter::matrix<T> x = shatter::matrix<T>::Ones(32, 8);
  std::vector<std::int32_t> y(8, 3);
  shatter::softmax_cross_entropy<T> ce;
  shatter::sgd<T> opt(net.parameters());
  const T loss = ce.forward(net.forward(x, shatter::mode::train), y);
  net.backward(ce.gradient());
  opt.step();
  return double(loss);
}

int main() {
  std::printf("%g %g\n", one_step<float>(), one_step<double>());
  return 0;
}
CPP
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
cxx=${CXX:-g++}
TIMEFORMAT='%R %U %S'
# shellcheck disable=SC2086
times=$( { time "$cxx" -std=c++17 -O2 -fopenmp -Iinclude $eigen "$tmp/tu.cpp" -o "$tmp/tu" -lz 1>&2; } 2>&1 | tail -1)
"$tmp/tu" >/dev/null
read -r wall user sys <<<"$times"
# The compiler is single-threaded: its CPU time (user + sys) is what the build costs, whatever
# else the machine is doing; wall time is printed too. The check uses CPU time.
to_ms() {  # "13.309" -> 13309
  local i=${1%%.*} f=${1#*.}
  [ "$f" = "$1" ] && f=0
  f=$(printf '%-3.3s' "$f")
  echo $(( 10#$i * 1000 + 10#${f// /0} ))
}
cpu_ms=$(( $(to_ms "$user") + $(to_ms "$sys") ))
printf 'compile-time: shatter.hpp + a network in float and double, %s -O2, compile and link:\n' "$cxx"
printf '  %d.%d s CPU (user %s s + sys %s s), %s s wall; limit %s s CPU\n' \
  $((cpu_ms / 1000)) $((cpu_ms % 1000 / 100)) "$user" "$sys" "$wall" "$limit"
if (( cpu_ms > limit * 1000 )); then
  echo "compile-time: FAILED, above the limit"
  exit 1
fi
