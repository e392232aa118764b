#!/usr/bin/python3
"""The PyTorch half of the bridge check (.ci/steps/55-pytorch-bridge.sh, with
examples/torch_roundtrip.cpp):
  torch_roundtrip.py from-shatter DIR   loads each network shatter wrote (load_module, strict),
      compares its evaluation outputs with shatter's, trains it two SGD steps (weights,
      batch-norm statistics and counters change) and writes it back (save_module) with its
      new outputs, and once more through the same network built here from the file's recipe
      ("shatter.model": shatter_torch.mlp / cifar);
  torch_roundtrip.py train-probe FILE IO   builds a CReLU MLP here (shatter_torch.mlp), trains it
      200 Adam steps on sin(3x), writes it (save_module) and its outputs on the probe's 256
      points of [-2, 2].
Exits 1 when outputs differ by more than 1e-5 (relative to max(1, |y|))."""
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shatter_torch  # noqa: E402

torch.set_num_threads(1)  # tiny networks: more threads only spin (10x slower on a busy machine)


def agree(what, a, b):
    d = ((a - b).abs().max() / max(1.0, b.abs().max().item())).item()
    print(f"  {what:<44} max |torch - shatter| / max(1, |y|) = {d:.2e}  {'ok' if d <= 1e-5 else 'FAIL'}")
    return d <= 1e-5


def from_recipe(r):
    if r["family"] == "mlp":
        return shatter_torch.mlp(r["name"], r["in"], r["width"], r["depth"], r["out"], r["bias"],
                                 r["beta"])
    return shatter_torch.cifar(r["name"], r["depth"], r["classes"], tuple(r["input"]), r["width"],
                               r["batch_norm"], r["tat_eta"])


def from_shatter(d):
    torch.manual_seed(0)
    ok = True
    for io_path in sorted(glob.glob(os.path.join(d, "*.io.safetensors"))):
        name = os.path.basename(io_path)[:-len(".io.safetensors")]
        io, _ = shatter_torch.read_safetensors(io_path)
        m = shatter_torch.load_module(os.path.join(d, name + ".safetensors")).eval()
        with torch.no_grad():
            ok = agree(name, m(io["x"]), io["y"]) and ok
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        for _ in range(2):
            opt.zero_grad()
            m(torch.randn(8, io["x"].shape[1])).square().mean().backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            y = m(io["x"])
        shatter_torch.save_module(m, os.path.join(d, name + ".torch.safetensors"))
        # The same network from this module's builders, by the recipe shatter stored: its
        # state_dict must take m's strictly, and shatter checks its structure against its own.
        m2 = from_recipe(json.loads(shatter_torch.read_safetensors(
            os.path.join(d, name + ".safetensors"))[1]["shatter.model"]))
        m2.load_state_dict(m.state_dict(), strict=True)
        shatter_torch.save_module(m2, os.path.join(d, name + ".pybuilt.safetensors"))
        shatter_torch.write_safetensors(os.path.join(d, name + ".torch_io.safetensors"),
                                        {"x": io["x"], "y": y}, {})
    return ok


def train_probe(path, io_path):
    torch.manual_seed(0)
    m = shatter_torch.mlp("plain_crelu_ll", in_=1, width=32, depth=6, out=1)
    t = torch.tensor([[-1.5], [0.25], [2.0]])
    with torch.no_grad():  # looks-linear at initialisation: f is affine, f(t) = f(0) + a t
        f, f0 = m(t)[:, 0], m(torch.zeros(1, 1))[0, 0]
    slopes = (f - f0) / t[:, 0]
    print(f"  looks-linear at initialisation: slopes {', '.join(f'{v:.6f}' for v in slopes.tolist())}")
    if (slopes - slopes[0]).abs().max() > 1e-5 * max(1.0, slopes.abs().max().item()):
        print("  FAIL: not affine")
        return False
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(200):
        x = torch.rand(64, 1) * 4 - 2
        opt.zero_grad()
        loss = (m(x) - torch.sin(3 * x)).square().mean()
        loss.backward()
        opt.step()
    print(f"  trained 200 Adam steps in PyTorch, loss {loss.item():.4f}")
    shatter_torch.save_module(m, path)
    t = torch.linspace(-2, 2, 256).unsqueeze(1)
    with torch.no_grad():
        shatter_torch.write_safetensors(io_path, {"x": t, "y": m.eval()(t)}, {})
    return True


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "from-shatter":
        sys.exit(0 if from_shatter(sys.argv[2]) else 1)
    if len(sys.argv) == 4 and sys.argv[1] == "train-probe":
        sys.exit(0 if train_probe(sys.argv[2], sys.argv[3]) else 1)
    sys.exit("usage: torch_roundtrip.py from-shatter DIR | train-probe FILE IO")
