#!/usr/bin/env python3
"""The README's model of data-parallel scaling to P machines, from measured numbers.

Each step every machine computes forward and backward on its part of the batch (the measured
step time), then the gradients are summed by a ring all-reduce, which moves 2 (P - 1) / P times
the gradient's bytes through each machine's link and pays 2 (P - 1) latencies per all-reduce call
(shatter's gradient_reducer makes one call per bucket of 2^20 floats); no overlap with backward:

    t_comm = 2 (P - 1) / P * bytes / bandwidth + 2 (P - 1) * latency * buckets
    efficiency = t_step / (t_step + t_comm)

Weak scaling: every machine keeps a batch of 128 (global batch 128 P, the learning rate scaled
with it); strong scaling: the global batch stays 128, so each machine computes 128 / P samples,
modelled as t_step / P (optimistic: small batches use the cores less well).

    mpi_scaling_model.py NAME:DEPTH:PARAMETERS:STEP_SECONDS ... [--latency-us 20]
"""
import math
import sys


def main(argv):
    latency = 20e-6
    rows = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--latency-us":
            latency = float(args.pop(0)) * 1e-6
            continue
        name, depth, params, step = a.split(":")
        rows.append((name, int(depth), int(params), float(step)))
    if not rows:
        print(__doc__)
        return 2
    print(f"latency per message {latency * 1e6:.0f} us; float gradients; buckets of 2^20 floats")
    print()
    print("| net | depth | gradient MB | step s (1 machine, batch 128) | P | link | "
          "all-reduce ms | weak scaling eff. | strong scaling eff. (global batch 128) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, depth, params, step in rows:
        nbytes = 4 * params
        buckets = max(1, math.ceil(params / 2**20))
        for p in (8, 64):
            for gbit in (10, 100):
                bw = gbit * 1e9 / 8
                t = 2 * (p - 1) / p * nbytes / bw + 2 * (p - 1) * latency * buckets
                weak = step / (step + t)
                strong = (step / p) / (step / p + t)
                print(f"| {name} | {depth} | {nbytes / 1e6:.1f} | {step:.2f} | {p} | {gbit} Gbit/s | "
                      f"{t * 1e3:.1f} | {100 * weak:.1f}% | {100 * strong:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
