#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) and the seed generator.
#   bash fuzz/build.sh [build-dir]       (default: build-fuzz next to fuzz/)
# Needs clang and libclang-rt-14-dev (Debian; listed in .ci/packages.txt), Eigen and zlib.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$(realpath -m "${1:-$root/build-fuzz}")
mkdir -p "$out"
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}
common=(-std=c++17 -g -O1 -I"$root/include" -I/usr/include/eigen3 -Wall -Wextra)
# The seed generator: a normal build.
"$cxx" "${common[@]}" "$here/make_seeds.cpp" -o "$out/make_seeds" -lz &
# Each target and the header of the parser it exercises; a target whose header is absent is
# skipped (reported), so the script works while parsers are still being added.
declare -A header=([safetensors]=io/safetensors.hpp [checkpoint]=io/checkpoint.hpp
                   [idx]=data/idx.hpp [cifar10]=data/cifar10.hpp)
targets=()
for t in safetensors checkpoint idx cifar10; do
  if [ -f "$root/include/shatter/${header[$t]}" ]; then
    targets+=("$t")
  else
    echo "fuzz: skipping $t (include/shatter/${header[$t]} not present)"
    rm -f "$out/${t}_fuzz"
  fi
done
for t in "${targets[@]}"; do
  "$cxx" "${common[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "$here/${t}_fuzz.cpp" -o "$out/${t}_fuzz" -lz &
  # two compilers at a time (2-core machines)
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
echo "fuzz targets built in $out: ${targets[*]}"
