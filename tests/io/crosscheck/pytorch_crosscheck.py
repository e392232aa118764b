#!/usr/bin/python3
"""Reads shatter's checkpoint with an independent safetensors reader (struct + json + torch,
no shatter code), loads it into the equivalent torch.nn.Sequential and compares outputs.
Usage: /usr/bin/python3 tests/io/crosscheck/pytorch_crosscheck.py DIR  (after write_checkpoint)."""
import json, struct, sys
import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}

def load(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out, end = {}, 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, f = e["data_offsets"]
        assert b == end, (name, b, end)  # contiguous
        end = f
        if e["dtype"] == "U64":  # torch 1.13 has no uint64: keep the raw bytes
            out[name] = struct.unpack("<%dQ" % ((f - b) // 8), buf[b:f])
            continue
        t = torch.frombuffer(bytearray(buf[b:f]), dtype=DTYPES[e["dtype"]]).clone()
        out[name] = t.reshape(e["shape"])
    assert end == len(buf)
    return out, meta

d = sys.argv[1] if len(sys.argv) > 1 else "."
state, meta = load(d + "/net.safetensors")
io, _ = load(d + "/io.safetensors")
print("metadata:", {k: v for k, v in meta.items() if k != "shatter.architecture"})
print("tensors:", {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")})
net = torch.nn.Sequential(
    torch.nn.Linear(4, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
    torch.nn.Linear(5, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
    torch.nn.Linear(5, 3))
weights = {k: v for k, v in state.items() if not k.startswith(("rng.", "optimizer."))}
missing, unexpected = net.load_state_dict(weights, strict=False)
assert unexpected == [], unexpected
assert all(k.endswith("num_batches_tracked") for k in missing), missing
net.eval()
with torch.no_grad():
    y = net(io["x"])
err = (y - io["y"]).abs().max().item()
print("max |torch - shatter| =", err)
assert err < 1e-5, err
print("OK: PyTorch reads the checkpoint as nn.Sequential(Linear, BatchNorm1d, ReLU, ...) state")
