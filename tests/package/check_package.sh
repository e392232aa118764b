#!/usr/bin/env bash
# Proves that a consumer project can use shatter in each documented way:
#   1. add_subdirectory(<shatter source>), with the README's recipe (a Release build by default:
#      no note), and as a Debug build (the one-time "compiled without optimisation" note)
#   2. cmake --install into a prefix, then find_package(shatter CONFIG REQUIRED)
#   3. the same prefix with the compiled companion (shatter::compiled, SHATTER_COMPILED)
#   4. the same prefix through pkg-config: g++ -O2 main.cpp $(pkg-config --cflags --libs shatter),
#      and with the compiled companion (shatter-compiled)
# Usage: check_package.sh <shatter source dir> <scratch dir>
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
consumer=$src/tests/package/consumer
note="compiled without optimisation"

echo "== add_subdirectory (no build type given: the recipe makes it Release)"
cmake -S "$consumer" -B "$work/sub" -DSHATTER_SOURCE="$src" >/dev/null
cmake --build "$work/sub" -j2 >/dev/null
"$work/sub/consumer" 2> "$work/sub.err"
if grep -q "$note" "$work/sub.err"; then
  echo "the recipe's build is unoptimised:"; cat "$work/sub.err"; exit 1
fi
# Not the top-level project: shatter's tests and benchmarks are not configured.
if grep -q "test_predict\|mlp_bench" "$work/sub/Makefile" "$work/sub/shatter/Makefile" 2>/dev/null; then
  echo "shatter's tests or benchmarks were configured in a consumer"; exit 1
fi

echo "== add_subdirectory, Debug: the note, once"
cmake -S "$consumer" -B "$work/debug" -DSHATTER_SOURCE="$src" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$work/debug" -j2 >/dev/null
"$work/debug/consumer" 2> "$work/debug.err"
[ "$(grep -c "$note" "$work/debug.err")" -eq 1 ] ||
  { echo "expected the note once on stderr, got:"; cat "$work/debug.err"; exit 1; }

echo "== top level without Catch2 and Google Benchmark: configures, skipping tests and benchmarks"
cmake -S "$src" -B "$work/nodeps" -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON \
      -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON -DSHATTER_BUILD_EXAMPLES=OFF > "$work/nodeps.log" 2>&1 ||
  { echo "configure failed without Catch2 / Google Benchmark:"; cat "$work/nodeps.log"; exit 1; }
grep -q "Catch2 2 not found, the tests are skipped" "$work/nodeps.log"
grep -q "Google Benchmark not found, the benchmarks are skipped" "$work/nodeps.log"

echo "== install + find_package"
cmake -S "$src" -B "$work/lib" -DSHATTER_BUILD_TESTS=OFF -DSHATTER_BUILD_EXAMPLES=OFF \
      -DSHATTER_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/lib" -j2 >/dev/null  # the compiled companion (SHATTER_BUILD_COMPILED)
cmake --install "$work/lib" >/dev/null
test -f "$work/prefix/share/shatter/cmake/shatterConfig.cmake"
test -f "$work/prefix/share/pkgconfig/shatter.pc"
test -f "$work/prefix/include/shatter/shatter.hpp"
cmake -S "$consumer" -B "$work/pkg" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/pkg" -j2 >/dev/null
"$work/pkg/consumer" 2> "$work/pkg.err"
! grep -q "$note" "$work/pkg.err"
grep -q 'PACKAGE_VERSION "0\.\|set(PACKAGE_VERSION' "$work/prefix/share/shatter/cmake/shatterConfigVersion.cmake"

echo "== install + find_package, linked with shatter::compiled"
cmake -S "$consumer" -B "$work/compiled" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCONSUMER_USE_COMPILED=ON >/dev/null
cmake --build "$work/compiled" -j2 >/dev/null
grep -q "SHATTER_COMPILED" "$work/compiled/CMakeFiles/consumer.dir/flags.make"
"$work/compiled/consumer"

echo "== pkg-config"
export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists --print-errors shatter
version=$(sed -n 's/^#define SHATTER_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$src/include/shatter/version.hpp" | paste -sd.)
[ "$(pkg-config --modversion shatter)" = "$version" ] ||
  { echo "pkg-config version $(pkg-config --modversion shatter), expected $version"; exit 1; }
pkg-config --cflags shatter | grep -q -- "-I$work/prefix/share/pkgconfig/../../include"
# shellcheck disable=SC2046
${CXX:-g++} -O2 "$consumer/main.cpp" -o "$work/pc_consumer" $(pkg-config --cflags --libs shatter)
"$work/pc_consumer"
# shellcheck disable=SC2046
${CXX:-g++} -O2 "$consumer/main.cpp" -o "$work/pc_compiled" \
  $(pkg-config --cflags --libs shatter-compiled)
pkg-config --cflags shatter-compiled | grep -q -- "-DSHATTER_COMPILED"
"$work/pc_compiled"
echo "package check passed"
