#!/usr/bin/python3
"""Which BLAS this PyTorch uses and how fast its sgemm runs: torch.mm of two N x N float matrices
(best of --reps products after a warm-up), the BLAS lines of torch.__config__.show(), the BLAS
libraries loaded into the process, the system's libblas.so.3 alternative (Debian's python3-torch
takes its BLAS from it) and, when that is OpenBLAS, the core it detected.

  OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_blas.py --threads 2
Prints one JSON line. Run it with OPENBLAS_VERBOSE=2 to have OpenBLAS print "Core: ..." on
stderr too.
"""
import argparse
import ctypes
import glob
import json
import os
import time

import torch


def loaded_blas_libraries():
    """Paths of the BLAS-like shared libraries mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path).lower()
            if path.startswith("/") and any(k in name for k in ("blas", "mkl", "dnnl", "lapack")):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def openblas_core(libs):
    """openblas_get_corename() and openblas_get_config() of the first loaded OpenBLAS, if any."""
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode(), lib.openblas_get_config().decode()
        except (OSError, AttributeError):
            continue
    return None, None


def sgemm_gflops(n, reps):
    """Best GFLOP/s of torch.mm on n x n float matrices (2 n^3 flops per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=2048, help="matrix size")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gflops = sgemm_gflops(args.n, args.reps)
    config = torch.__config__.show()
    libs = loaded_blas_libraries()
    core, ob_config = openblas_core(libs)
    alternative = sorted({os.path.realpath(p) for p in glob.glob("/usr/lib/*/libblas.so.3")})
    print(json.dumps({
        "torch": torch.__version__, "threads": args.threads, "n": args.n, "sgemm_gflops": gflops,
        "config_blas": [s.strip() for s in config.replace(",", "\n").splitlines()
                        if "BLAS" in s or "LAPACK" in s],
        "mkldnn": torch.backends.mkldnn.is_available(), "loaded_blas": libs,
        "libblas_alternative": alternative, "openblas_core": core, "openblas_config": ob_config,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}))


if __name__ == "__main__":
    main()
