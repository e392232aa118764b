#!/usr/bin/python3
"""PyTorch side of workloads a and b (../shared/perf-anchors.md): one training step of a deep MLP,
fp32, batch 128, input 3072, 10 classes, softmax cross-entropy, plain SGD.

    a: CReLU, width 256 (later layers take 512 inputs)    b: ReLU, width 256

Usage: /usr/bin/python3 bench/torch_mlp.py --act crelu --depth 20 --threads 2
Prints one JSON line: {"workload", "threads", "ms_per_step" (median of the blocks), "blocks"}.
For a true one-thread figure also set OPENBLAS_NUM_THREADS=1 (torch.set_num_threads does not
reach OpenBLAS); at two threads OMP_WAIT_POLICY=passive is usually PyTorch's best for MLPs.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


class CReLU(torch.nn.Module):
    """[relu(z), relu(-z)] along the feature axis (PyTorch keeps samples in rows)."""

    def forward(self, z):
        return torch.cat((F.relu(z), F.relu(-z)), 1)


def build(act, depth, width=256, n_in=3072, n_out=10):
    layers, prev = [], n_in
    for _ in range(depth):
        layers.append(torch.nn.Linear(prev, width))
        layers.append(CReLU() if act == "crelu" else torch.nn.ReLU())
        prev = 2 * width if act == "crelu" else width
    layers.append(torch.nn.Linear(prev, n_out))
    return torch.nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--act", choices=["crelu", "relu"], required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--block-seconds", type=float, default=0.3, help="minimum time per block")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    net = build(args.act, args.depth)
    x = torch.randn(args.batch, 3072)
    y = torch.randint(0, 10, (args.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    blocks = []
    for _ in range(args.blocks):
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= args.block_seconds:
                break
        blocks.append(1e3 * dt / n)
    print(json.dumps({"workload": f"mlp/{args.act}/depth:{args.depth}", "threads": args.threads,
                      "ms_per_step": statistics.median(blocks),
                      "blocks": [round(b, 3) for b in blocks]}))


if __name__ == "__main__":
    main()
