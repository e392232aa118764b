#!/usr/bin/python3
"""PyTorch side of workload d (../shared/perf-anchors.md): the shattering probe of a plain ReLU
MLP with He init, scalar input, width 200, depth 50, 1024 points in [-2, 2] as one batch:
forward plus d(output)/d(input) at every point by autograd, fp32.

Usage: /usr/bin/python3 bench/torch_probe.py --threads 2
Prints one JSON line: {"workload", "threads", "ms_per_probe" (median of the blocks), "blocks"}.
For a true one-thread figure also set OPENBLAS_NUM_THREADS=1 (torch.set_num_threads does not
reach OpenBLAS); at two threads OMP_WAIT_POLICY=passive is usually PyTorch's best for MLPs.
"""
import argparse
import json
import statistics
import time

import torch


def build(depth, width):
    layers, prev = [], 1
    for _ in range(depth):
        lin = torch.nn.Linear(prev, width)
        torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")  # N(0, 2 / fan_in)
        torch.nn.init.normal_(lin.bias, std=0.5)
        layers += [lin, torch.nn.ReLU()]
        prev = width
    out = torch.nn.Linear(prev, 1)
    torch.nn.init.normal_(out.weight, std=prev ** -0.5)
    torch.nn.init.normal_(out.bias, std=0.5)
    return torch.nn.Sequential(*layers, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--width", type=int, default=200)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--block-seconds", type=float, default=0.5, help="minimum time per block")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    net = build(args.depth, args.width)
    for p in net.parameters():
        p.requires_grad_(False)  # only d(output)/d(input) is wanted, as in shatter's probe
    t = torch.linspace(-2, 2, args.points).reshape(args.points, 1)

    def probe():
        x = t.clone().requires_grad_(True)
        y = net(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        return g

    for _ in range(3):
        probe()
    blocks = []
    for _ in range(args.blocks):
        n, t0 = 0, time.perf_counter()
        while True:
            probe()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= args.block_seconds:
                break
        blocks.append(1e3 * dt / n)
    print(json.dumps({"workload": f"probe/relu/depth:{args.depth}/width:{args.width}/points:{args.points}",
                      "threads": args.threads, "ms_per_probe": statistics.median(blocks),
                      "blocks": [round(b, 3) for b in blocks]}))


if __name__ == "__main__":
    main()
