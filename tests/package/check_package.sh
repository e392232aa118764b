#!/usr/bin/env bash
# Proves that a consumer project can use shatter both ways:
#   1. add_subdirectory(<shatter source>)
#   2. cmake --install into a prefix, then find_package(shatter CONFIG REQUIRED)
# Usage: check_package.sh <shatter source dir> <scratch dir>
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
consumer=$src/tests/package/consumer

echo "== add_subdirectory"
cmake -S "$consumer" -B "$work/sub" -DSHATTER_SOURCE="$src" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/sub" -j2 >/dev/null
"$work/sub/consumer"

echo "== install + find_package"
cmake -S "$src" -B "$work/lib" -DSHATTER_BUILD_TESTS=OFF -DSHATTER_BUILD_EXAMPLES=OFF \
      -DSHATTER_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/lib" >/dev/null
test -f "$work/prefix/share/shatter/cmake/shatterConfig.cmake"
test -f "$work/prefix/include/shatter/shatter.hpp"
cmake -S "$consumer" -B "$work/pkg" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/pkg" -j2 >/dev/null
"$work/pkg/consumer"
grep -q 'PACKAGE_VERSION "0\.\|set(PACKAGE_VERSION' "$work/prefix/share/shatter/cmake/shatterConfigVersion.cmake"
echo "package check passed"
