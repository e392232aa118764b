#!/usr/bin/python3
"""PyTorch side of the deep CIFAR comparison: shatter's four CIFAR architectures
(include/shatter/network/cifar.hpp) with the same layers and shapes, fp32, input 3x32x32.

  depth = 6n + 2: 1 + 6n 3x3 convolutions (widths 16, 32, 64 at 32x32, 16x16, 8x8; the first
  convolution of stages 2 and 3 has stride 2), global average pooling, linear classifier.
  plain_relu      conv-BN-ReLU units
  plain_crelu     conv-BN-CReLU units, CReLU = cat(relu(z), relu(-z)) on channels (next conv
                  takes 2C channels), He init
  plain_crelu_ll  the same with the mirrored looks-linear init [W0, -W0], W0 orthogonal
  resnet          conv-BN-ReLU, then n basic blocks per stage,
                  relu(S(x) + BN(conv(relu(BN(conv(x)))))), S the identity or option A
                  (stride-2 subsampling, zero channels appended; no parameters)
  Convolutions have no bias (BN follows), BN eps 1e-5 momentum 0.1, classifier with bias.

Modes (each run is meant to be a fresh process; prints one JSON line):
  --memory   peak RSS (getrusage ru_maxrss) of ONE training step (forward, cross-entropy,
             backward, SGD momentum 0.9 step) at --batch (default 128); with --eval of one
             evaluation pass (model.eval(), torch.no_grad()) at --batch (default 500)
  --time     images/s of training steps (or evaluation passes with --eval): one warm-up step,
             then --steps timed steps; reports the median after the warm-up and the figure over
             all steps including the warm-up

  /usr/bin/python3 bench/torch_cifar.py --memory --arch plain_crelu_ll --depth 200 --threads 2
  /usr/bin/python3 bench/torch_cifar.py --time --arch resnet --depth 200 --steps 5 --threads 2
Set OMP_NUM_THREADS and OPENBLAS_NUM_THREADS to the thread count too (perf-anchors.md);
OMP_WAIT_POLICY is taken from the environment and reported.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F

ARCHS = ("resnet", "plain_relu", "plain_crelu", "plain_crelu_ll")


def peak_rss_mib():
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class CReLU(torch.nn.Module):
    """[relu(z), relu(-z)] concatenated along the channel axis (shatter's CReLU order)."""

    def forward(self, z):
        return torch.cat((F.relu(z), F.relu(-z)), dim=1)


class OptionA(torch.nn.Module):
    """Parameter-free shortcut: every stride-th pixel, zero channels appended up to out_c."""

    def __init__(self, out_c, stride):
        super().__init__()
        self.out_c, self.stride = out_c, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_c - x.shape[1]))


class BasicBlock(torch.nn.Module):
    """relu(S(x) + BN(conv(relu(BN(conv(x)))))) with S the identity or option A."""

    def __init__(self, in_c, out_c, stride):
        super().__init__()
        self.branch = torch.nn.Sequential(
            he(torch.nn.Conv2d(in_c, out_c, 3, stride, 1, bias=False)), torch.nn.BatchNorm2d(out_c),
            torch.nn.ReLU(), he(torch.nn.Conv2d(out_c, out_c, 3, 1, 1, bias=False)),
            torch.nn.BatchNorm2d(out_c))
        same = stride == 1 and in_c == out_c
        self.shortcut = torch.nn.Identity() if same else OptionA(out_c, stride)

    def forward(self, x):
        return F.relu(self.shortcut(x) + self.branch(x))


def he(layer):
    """He normal init N(0, 2 / fan_in) of a convolution, as shatter's init::he_normal."""
    torch.nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    return layer


def mirrored(weight):
    """Looks-linear init in place: [W0, -W0] over the input channels, W0 orthogonal."""
    with torch.no_grad():
        half = weight.shape[1] // 2
        w0 = torch.empty_like(weight[:, :half])
        torch.nn.init.orthogonal_(w0)
        weight[:, :half] = w0
        weight[:, half:] = -w0


def head(layers, channels, ll, classes=10):
    """Global average pooling and the linear classifier (N(0, 1/fan_in) or mirrored)."""
    fc = torch.nn.Linear(channels, classes)
    torch.nn.init.zeros_(fc.bias)
    if ll:
        mirrored(fc.weight)
    else:
        torch.nn.init.normal_(fc.weight, 0.0, channels ** -0.5)
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), fc]


def build_plain(arch, n, width=16):
    """conv-BN-act units: one from the input, then 2n per stage; see the module docstring."""
    layers, c = [], 3
    crelu, ll = arch != "plain_relu", arch == "plain_crelu_ll"
    for stage, i in [(0, -1)] + [(s, i) for s in range(3) for i in range(2 * n)]:
        out = width << stage
        conv = torch.nn.Conv2d(c, out, 3, 2 if stage > 0 and i == 0 else 1, 1, bias=False)
        if not ll:
            he(conv)
        elif c == 3:
            torch.nn.init.orthogonal_(conv.weight)
        else:
            mirrored(conv.weight)
        layers += [conv, torch.nn.BatchNorm2d(out), CReLU() if crelu else torch.nn.ReLU()]
        c = 2 * out if crelu else out
    head(layers, c, ll)
    return torch.nn.Sequential(*layers)


def build_resnet(n, width=16):
    """He et al. 2016 CIFAR resnet with option-A shortcuts; see the module docstring."""
    layers = [he(torch.nn.Conv2d(3, width, 3, 1, 1, bias=False)), torch.nn.BatchNorm2d(width),
              torch.nn.ReLU()]
    c = width
    for stage in range(3):
        for b in range(n):
            out = width << stage
            layers.append(BasicBlock(c, out, 2 if stage > 0 and b == 0 else 1))
            c = out
    head(layers, c, False)
    return torch.nn.Sequential(*layers)


def build(arch, depth):
    if depth < 8 or (depth - 2) % 6:
        raise SystemExit(f"torch_cifar.py: depth must be 6n + 2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    return build_resnet(n) if arch == "resnet" else build_plain(arch, n)


def make_step(model, x, y, train):
    """One training step (forward, cross-entropy, backward, SGD momentum) or evaluation pass."""
    if not train:
        model.eval()

        def step():
            with torch.no_grad():
                return float(F.cross_entropy(model(x), y))
        return step
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return float(loss)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--memory", action="store_true", help="peak RSS of one step (or pass)")
    what.add_argument("--time", action="store_true", help="images/s over --steps steps")
    ap.add_argument("--arch", choices=ARCHS, default="plain_crelu_ll")
    ap.add_argument("--depth", type=int, default=200)
    ap.add_argument("--batch", type=int, help="default 128 (training), 500 (--eval)")
    ap.add_argument("--eval", action="store_true", help="evaluation passes instead of training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="--time: timed steps after a warm-up")
    args = ap.parse_args()
    batch = args.batch or (500 if args.eval else 128)

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    rss_before = peak_rss_mib()
    t0 = time.perf_counter()
    model = build(args.arch, args.depth)
    build_ms = 1e3 * (time.perf_counter() - t0)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    step = make_step(model, x, y, not args.eval)
    ms, loss = [], float("nan")
    for _ in range(1 if args.memory else 1 + args.steps):
        t0 = time.perf_counter()
        loss = step()
        ms.append(1e3 * (time.perf_counter() - t0))
    params = sum(p.numel() for p in model.parameters())
    r = {"side": "pytorch", "mode": "memory" if args.memory else "time", "arch": args.arch,
         "depth": args.depth, "batch": batch, "pass": "eval" if args.eval else "train",
         "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
         "parameters": params, "parameter_bytes": 4 * params, "build_ms": round(build_ms, 1),
         "rss_before_mib": round(rss_before, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
         "loss": loss, "step_ms": [round(m, 2) for m in ms]}
    timed = ms[1:] or ms
    r["median_ms"] = statistics.median(timed)
    r["images_per_second"] = 1e3 * batch / r["median_ms"]
    r["images_per_second_all"] = 1e3 * batch * len(ms) / sum(ms)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
