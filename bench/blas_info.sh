#!/usr/bin/env bash
# Prints which BLAS and which CPU core each side of a comparison uses, so a ratio is never taken
# against a crippled PyTorch (reference BLAS, or OpenBLAS reading the CPU as a generic core):
#   PyTorch: torch.__config__.show()'s BLAS lines, the BLAS libraries loaded into the process,
#            the libblas.so.3 alternative, the core OpenBLAS detected (OPENBLAS_VERBOSE=2 and
#            openblas_get_corename) and torch.mm's sgemm GFLOP/s (bench/torch_blas.py)
#   shatter: Eigen's own kernels (SHATTER_USE_BLAS=OFF in BUILD) or the OpenBLAS it links, and
#            the -march=native target it was compiled for
#   bash bench/blas_info.sh BUILD_DIR [THREADS] [--shatter-only]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: blas_info.sh BUILD_DIR [THREADS] [--shatter-only]}
threads=${2:-1}
torch_side=1
[ "${3:-}" = --shatter-only ] && torch_side=0

err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=""
if [ "$torch_side" = 1 ]; then
  echo "   cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
  out=$(OPENBLAS_VERBOSE=2 OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
        /usr/bin/python3 "$here/torch_blas.py" --threads "$threads" 2>"$err") ||
    { echo "   PyTorch: torch_blas.py failed: $(tail -n1 "$err")"; out=""; }
fi
verbose=$(grep -i 'core' "$err" | sort -u | tr '\n' ' ' || true)
if [ -n "$out" ]; then
  /usr/bin/python3 - "$out" "$verbose" <<'PY'
import json, sys
r, verbose = json.loads(sys.argv[1]), sys.argv[2].strip()
print(f"   PyTorch {r['torch']}: {'; '.join(r['config_blas']) or 'no BLAS line in torch.__config__'}"
      f"; convolutions through oneDNN: {r['mkldnn']}")
print(f"   PyTorch BLAS loaded: {', '.join(r['loaded_blas']) or 'none found'}")
print(f"   libblas.so.3 alternative: {', '.join(r['libblas_alternative']) or 'none'}")
core = r["openblas_core"] or "not OpenBLAS"
print(f"   PyTorch OpenBLAS core: {core} ({r['openblas_config'] or '-'}); "
      f"OPENBLAS_VERBOSE=2: {verbose or 'nothing printed'}")
print(f"   PyTorch torch.mm sgemm {r['n']}^3, {r['threads']} thread(s): {r['sgemm_gflops']:.1f} GFLOP/s")
if "reference" in " ".join(r["libblas_alternative"]) or not r["openblas_core"]:
    print("   WARNING: PyTorch does not run on OpenBLAS here; its linear layers will be very slow")
with open("/proc/cpuinfo") as f:
    avx512 = " avx512f" in next((l for l in f if l.startswith("flags")), "")
avx512_cores = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS cores with AVX-512 kernels
if avx512 and r["openblas_core"] and not any(c in r["openblas_core"] for c in avx512_cores):
    print(f"   note: the CPU has AVX-512 but OpenBLAS runs its {r['openblas_core']} kernels "
          "(shatter's -march=native build may use AVX-512)")
PY
fi

use_blas=$(grep -s '^SHATTER_USE_BLAS:' "$build/CMakeCache.txt" | cut -d= -f2 || true)
# (no early exit in awk: g++ would die of SIGPIPE and pipefail end the script)
march=$(g++ -march=native -Q --help=target 2>/dev/null | awk '$1 == "-march=" && !m {m = $2} END {print m}' || true)
eigen=$(awk '/#define EIGEN_(WORLD|MAJOR|MINOR)_VERSION/ {v = v (v ? "." : "") $3} END {print v}' \
        /usr/include/eigen3/Eigen/src/Core/util/Macros.h 2>/dev/null || true)
if [ "${use_blas:-OFF}" = ON ]; then
  exes=("$build"/bench/*_bench)
  exe=${exes[0]}
  lib=$(ldd "$exe" 2>/dev/null | awk '/blas/ {print $3}' | xargs -r readlink -f | tr '\n' ' ')
  core=$(OPENBLAS_VERBOSE=2 "$exe" --benchmark_list_tests 2>&1 >/dev/null | grep -i core | sort -u || true)
  echo "   shatter ($build): Eigen $eigen products through OpenBLAS (SHATTER_USE_BLAS=ON): ${lib:-?}; ${core:-core not printed}; -march=native = $march"
else
  echo "   shatter ($build): Eigen $eigen's own product kernels and shatter's convolution kernels, no BLAS (SHATTER_USE_BLAS=OFF); -march=native = $march"
fi
