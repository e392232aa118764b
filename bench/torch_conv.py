#!/usr/bin/python3
"""PyTorch side of workload c (../shared/perf-anchors.md): the plain CReLU convnet of
bench/conv_bench.cpp, fp32, batch 64, input 3x32x32, 3x3 convs with bias, CReLU (channel
concatenation) after every conv, no batch norm:
  6 convs with 16 channels at 32x32 (first from 3), stride-2 conv to 32, 6 convs with 32 channels
  at 16x16, stride-2 conv to 64, 6 convs with 64 channels at 8x8, global average pool, linear.

Usage: /usr/bin/python3 bench/torch_conv.py --mode train|infer --threads 2
Prints one JSON line: {"workload", "threads", "ms_per_step" (median of blocks), "images_per_second",
"blocks"}. Training: forward, cross-entropy, backward, SGD (momentum 0.9) step. Inference:
forward under torch.no_grad() in eval mode. Install torch with `bash .ci/setup python3-torch`.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


class CReLU(torch.nn.Module):
    """[relu(z), relu(-z)] concatenated along the channel axis."""

    def forward(self, z):
        return torch.cat((F.relu(z), F.relu(-z)), 1)


def build():
    layers, c = [], 3

    def unit(out, stride):
        nonlocal c
        layers.append(torch.nn.Conv2d(c, out, 3, stride=stride, padding=1, bias=True))
        layers.append(CReLU())
        c = 2 * out

    for _ in range(6):
        unit(16, 1)
    unit(32, 2)
    for _ in range(6):
        unit(32, 1)
    unit(64, 2)
    for _ in range(6):
        unit(64, 1)
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, 10)]
    return torch.nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["train", "infer"], required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--block-seconds", type=float, default=1.0, help="minimum time per block")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    net = build()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            net(x)

    if args.mode == "infer":
        net.eval()
    step = train_step if args.mode == "train" else infer_step
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
    ms = statistics.median(blocks)
    print(json.dumps({"workload": f"conv/{args.mode}", "threads": args.threads,
                      "ms_per_step": ms, "images_per_second": 1e3 * args.batch / ms,
                      "blocks": [round(b, 3) for b in blocks]}))


if __name__ == "__main__":
    main()
