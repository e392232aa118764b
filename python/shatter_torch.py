"""shatter <-> PyTorch: shatter's weights files and checkpoints as torch.nn modules, and back.

Needs only PyTorch and NumPy (Debian: python3-torch, python3-numpy); safetensors files are read
and written here directly (an 8-byte header length, a JSON header, the raw little-endian data).

    import shatter_torch
    m = shatter_torch.load_module("net.safetensors")   # a shatter file -> nn.Module (strict load)
    m = shatter_torch.mlp("plain_crelu_ll", in_=1, width=64, depth=10, out=1)   # or build one here
    ... train m ...
    shatter_torch.save_module(m, "trained.safetensors")  # -> shatter's load_weights / load_network

The module mirrors shatter's layers one for one, so its state_dict names and shapes are the
file's ("<i>.weight", "<i>.branch.<j>.running_mean", conv weights [out, in, kh, kw], ...).
Inputs are [N, features] (or [N, C, H, W] for image networks); outputs [N, outputs].
"""
import json
import math
import struct

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

WEIGHTS_FORMAT = "shatter-weights-1"
_NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
       "I8": np.int8, "I16": np.int16, "F16": np.float16, "U64": np.uint64}
_NAME = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"}


# ----------------------------------------------------------------------------- safetensors
def read_safetensors(path):
    """(tensors, metadata) of a safetensors file; U64 tensors (old shatter rng states) are
    returned as NumPy arrays (torch 1.13 has no uint64)."""
    data = open(path, "rb").read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: truncated or not a safetensors file")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    buf = memoryview(data)[8 + n:]
    tensors = {}
    for name, e in header.items():
        b, f = e["data_offsets"]
        if e["dtype"] not in _NP or f > len(buf):
            raise ValueError(f"{path}: tensor '{name}': bad dtype or offsets")
        a = np.frombuffer(buf[b:f], dtype=np.dtype(_NP[e["dtype"]]).newbyteorder("<"))
        a = a.reshape(e["shape"]).copy()
        tensors[name] = a if e["dtype"] == "U64" else torch.from_numpy(a)
    return tensors, meta


def write_safetensors(path, tensors, metadata):
    """Writes {name: tensor} and {key: str} as a safetensors file (tensors by decreasing element
    size, then name, as shatter writes them)."""
    items = []
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _NAME:
            raise ValueError(f"tensor '{name}': dtype {t.dtype} is not supported")
        items.append((name, t))
    items.sort(key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, offset = {"__metadata__": dict(metadata)}, [], 0
    for name, t in items:
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ----------------------------------------------------------------------------- modules
class CReLU(nn.Module):
    """[relu(z), relu(-z)] along the channel (feature) axis. Its derivative at exactly z = 0 is
    PyTorch's (0 on both halves); shatter passes the first half there (see the README)."""

    def forward(self, x):
        return torch.cat([F.relu(x), F.relu(-x)], dim=1)


class ScaledLeakyReLU(nn.Module):
    """gain * (z for z > 0, slope z otherwise): shatter's leaky_relu (TAT's with its gain)."""

    def __init__(self, slope, gain=1.0):
        super().__init__()
        self.slope, self.gain = float(slope), float(gain)

    def forward(self, x):
        return self.gain * torch.where(x > 0, x, self.slope * x)


class PReLU(nn.Module):
    """z for z > 0, a z otherwise, with `slopes` learned slopes: one, one per channel or one per
    feature (shatter's prelu; its parameter is named "slope")."""

    def __init__(self, slopes, initial=1.0):
        super().__init__()
        self.slope = nn.Parameter(torch.full((slopes,), float(initial)))

    def forward(self, x):
        k = self.slope.numel()
        if k == 1:
            a = self.slope
        elif x.dim() == 4 and k == x.shape[1]:
            a = self.slope.view(1, k, 1, 1)
        elif x.dim() == 2 and k == x.shape[1]:
            a = self.slope.view(1, k)
        else:
            a = self.slope.view(1, *x.shape[1:])
        return torch.where(x > 0, x, a * x)


class GlobalAvgPool(nn.Module):
    """Mean over the spatial positions: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class SubsamplePad(nn.Module):
    """He et al.'s option-A shortcut: every stride-th row and column, zero channels appended."""

    def __init__(self, out_channels, stride):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        y = x[:, :, ::self.stride, ::self.stride]
        return F.pad(y, (0, 0, 0, 0, 0, self.out_channels - y.shape[1]))


class Residual(nn.Module):
    """x + beta * branch(x)."""

    def __init__(self, branch, beta=1.0):
        super().__init__()
        self.branch, self.beta = branch, float(beta)

    def forward(self, x):
        return x + self.beta * self.branch(x)


class BranchSum(nn.Module):
    """a(x) + b(x)."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return self.a(x) + self.b(x)


class Sequential(nn.Sequential):
    """nn.Sequential that brings each layer's input to the rank it takes ([N, C, H, W] for
    image layers, [N, features] for dense ones), as shatter's flat sample columns allow."""

    def forward(self, x):
        for m in self:
            shape = getattr(m, "shatter_in", None)
            if shape is not None and m.shatter_rank == 4 and x.dim() != 4:
                x = x.reshape(x.shape[0], *shape)
            elif m.shatter_rank == 2 and x.dim() != 2:
                x = x.flatten(1)
            x = m(x)
        return x


class Network(Sequential):
    """A whole shatter network: flat outputs [N, outputs]."""

    def forward(self, x):
        return super().forward(x).flatten(1)


_IMAGE_KINDS = {"conv2d", "max_pool2d", "global_avg_pool", "subsample_pad", "flatten"}


def _layer(d):
    k, (c, h, w) = d["kind"], d["in"]
    if k == "dense":
        m = nn.Linear(c * h * w, d["out"], bias=d["bias"])
    elif k == "conv2d":
        m = nn.Conv2d(c, d["out"][0], d["kernel"], d["stride"], d["padding"], bias=d["bias"])
    elif k == "batch_norm":
        cls = nn.BatchNorm1d if d["spatial"] == 1 else nn.BatchNorm2d
        m = cls(d["channels"], eps=d["eps"], momentum=d["momentum"])
    elif k == "relu":
        m = nn.ReLU()
    elif k == "crelu":
        m = CReLU()
    elif k == "identity":
        m = nn.Identity()
    elif k == "tanh":
        m = nn.Tanh()
    elif k == "leaky_relu":
        m = ScaledLeakyReLU(d["slope"], d["gain"])
    elif k == "prelu":
        m = PReLU(d["slopes"])
    elif k == "global_avg_pool":
        m = GlobalAvgPool()
    elif k == "flatten":
        m = Flatten()
    elif k == "max_pool2d":
        m = nn.MaxPool2d(d["kernel"], d["stride"])
    elif k == "subsample_pad":
        m = SubsamplePad(d["out"][0], d["stride"])
    elif k == "residual":
        m = Residual(_sequence(d["branch"], Sequential), d["beta"])
    elif k == "branch_sum":
        m = BranchSum(_sequence(d["a"], Sequential), _sequence(d["b"], Sequential))
    elif k == "sequential":
        m = _sequence(d["layers"], Sequential)
    else:
        raise ValueError(f"shatter layer kind '{k}' has no PyTorch module here")
    image = k in _IMAGE_KINDS or (k == "batch_norm" and d["spatial"] > 1)
    m.shatter_in, m.shatter_rank = (c, h, w), 4 if image else (2 if k in ("dense", "batch_norm") else 0)
    return m


def _sequence(layers, cls):
    return cls(*[_layer(d) for d in layers])


def build_module(description, dtype=torch.float32):
    """The nn.Module of a network description ("shatter.layers": a dict or its JSON text)."""
    desc = json.loads(description) if isinstance(description, str) else description
    m = _sequence(desc["layers"], Network).to(dtype)
    m.shatter_layers = json.dumps(desc, separators=(",", ":"))
    m.shatter_model = None
    return m


def load_module(path):
    """The nn.Module of a shatter weights file or checkpoint (its optimiser and RNG state are
    ignored), its weights loaded with strict=True; float32 or float64 as the file. The module is
    returned in training mode, as PyTorch creates modules; call .eval() for inference."""
    tensors, meta = read_safetensors(path)
    if "shatter.layers" not in meta:
        raise ValueError(f"{path}: no \"shatter.layers\" (not written by this shatter version)")
    state = {k: v for k, v in tensors.items() if k != "rng.state" and not k.startswith("optimizer.")}
    floats = [v.dtype for v in state.values() if v.dtype in (torch.float32, torch.float64)]
    m = build_module(meta["shatter.layers"], floats[0] if floats else torch.float32)
    m.load_state_dict(state, strict=True)
    m.shatter_model = meta.get("shatter.model")
    return m


def save_module(module, path, metadata=None):
    """Writes module's state_dict in shatter's weights format, with its description, for
    shatter's load_weights / load_network. `module` must come from load_module, build_module,
    mlp or cifar (it carries the description); its state_dict must match the description."""
    layers = getattr(module, "shatter_layers", None)
    if layers is None:
        raise ValueError("save_module: the module has no shatter description; build it with "
                         "shatter_torch.mlp / cifar / build_module or load it with load_module")
    state = module.state_dict()
    want = build_module(layers).state_dict()
    if set(want) != set(state) or any(want[k].shape != state[k].shape for k in want):
        raise ValueError("save_module: the module's state_dict no longer matches its description")
    desc = json.loads(layers)
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta.update({"shatter.format": WEIGHTS_FORMAT, "shatter.version": "shatter_torch 1 (torch "
                 + torch.__version__ + ")", "shatter.layers": layers,
                 "shatter.scalar": "double" if dtype == torch.float64 else "float",
                 "shatter.architecture": "; ".join(d.get("describe", d["kind"]) for d in desc["layers"])})
    if getattr(module, "shatter_model", None):
        meta["shatter.model"] = module.shatter_model
    write_safetensors(path, state, meta)


# ----------------------------------------------------------------------------- builders
def _dense(i, o, bias=True):
    return {"kind": "dense", "in": [i, 1, 1], "out": o, "bias": bias, "describe": f"dense({i} -> {o})"}


def _act(kind, shape, **kw):
    return dict({"kind": kind, "in": list(shape), "describe": kind}, **kw)


def _bn(c, shape):
    return {"kind": "batch_norm", "in": list(shape), "channels": c, "spatial": shape[1] * shape[2],
            "eps": 1e-5, "momentum": 0.1, "describe": "batch_norm"}


MLP_NAMES = ["plain_relu", "plain_relu_bn", "resnet", "resnet_bn", "plain_crelu", "plain_crelu_ll"]
# shatter's former names of the fully connected architectures, still accepted
MLP_FORMER = {"fnn_relu": "plain_relu", "fnn_relu_bn": "plain_relu_bn", "crelu": "plain_crelu",
              "crelu_ll": "plain_crelu_ll"}
CIFAR_NAMES = ["resnet", "plain_relu", "plain_crelu", "plain_crelu_ll", "plain_prelu_ll", "plain_tat"]


def looks_linear_(module):
    """shatter's looks-linear initialisation in place: the first weighted layer orthogonal, every
    later one (fed by a CReLU, possibly through pooling) [W0, -W0] with W0 orthogonal, biases 0;
    the network is then exactly affine. For plain_crelu_ll (fully connected and CIFAR)."""
    weighted = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, m in enumerate(weighted):
            w = m.weight
            if i == 0:
                nn.init.orthogonal_(w.view(w.shape[0], -1))
            else:
                half = w.shape[1] // 2
                w0 = torch.empty(w.shape[0], half * w[0, 0].numel(), dtype=w.dtype)
                nn.init.orthogonal_(w0)
                w0 = w0.view(w.shape[0], half, *w.shape[2:])
                w.copy_(torch.cat([w0, -w0], dim=1))
            if m.bias is not None:
                m.bias.zero_()
    return module


def mlp(name, in_, width, depth, out, bias=True, beta=1.0, dtype=torch.float32):
    """shatter's fully connected architecture `name` (network/architecture.hpp: build(a, s, g));
    plain_crelu_ll gets the looks-linear initialisation (looks_linear_), the others PyTorch's
    default one. The former names (fnn_relu, crelu_ll, ...) are accepted."""
    name = MLP_FORMER.get(name, name)
    if name not in MLP_NAMES:
        raise ValueError(f"unknown architecture '{name}' (valid: {', '.join(MLP_NAMES)})")
    bn = name.endswith("_bn")
    layers = []
    if name.startswith("resnet"):
        layers.append(_dense(in_, width, bias))
        for _ in range(depth):
            branch = ([_bn(width, (width, 1, 1))] if bn else []) + [
                _act("relu", (width, 1, 1)), _dense(width, width, bias)]
            layers.append({"kind": "residual", "in": [width, 1, 1], "beta": beta, "branch": branch,
                           "describe": "residual"})
        layers.append(_dense(width, out, bias))
    else:
        act = "crelu" if name.startswith("plain_crelu") else "relu"
        prev = in_
        for _ in range(depth):
            layers.append(_dense(prev, width, bias))
            if bn:
                layers.append(_bn(width, (width, 1, 1)))
            layers.append(_act(act, (width, 1, 1)))
            prev = 2 * width if act == "crelu" else width
        layers.append(_dense(prev, out, bias))
    m = build_module({"input": [in_, 1, 1], "layers": layers}, dtype)
    m.shatter_model = json.dumps({"family": "mlp", "name": name, "in": in_, "width": width,
                                  "depth": depth, "out": out, "bias": bias, "bias_std": 0,
                                  "batch_norm": bn, "beta": beta})
    return looks_linear_(m) if name == "plain_crelu_ll" else m


def tat_slope_or_relu(layers, eta=0.9):
    """TAT's leaky-ReLU slope for C_f(0) = eta over `layers` activations (0 when unreachable),
    as shatter's tat_slope_or_relu (activation/tat.hpp)."""
    def cmap(c, a):
        c = min(1.0, max(-1.0, c))
        relu = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
        return ((1 - a) ** 2 * relu + 2 * a * c) / (1 + a * a)

    def net(a):
        c = 0.0
        for _ in range(layers):
            c = cmap(c, a)
        return c
    if net(0.0) < eta:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if net(mid) >= eta:
            lo = mid
        else:
            hi = mid
    return lo if abs(net(lo) - eta) <= abs(net(hi) - eta) else hi


def cifar(name, depth=20, classes=10, input=(3, 32, 32), width=16, batch_norm=True, tat_eta=0.9,
          dtype=torch.float32):
    """shatter's CIFAR architecture `name` (network/cifar.hpp: build_cifar(a, s, g)), depth =
    6 n + 2; plain_crelu_ll gets the looks-linear initialisation (looks_linear_), plain_prelu_ll
    slopes 1, the others PyTorch's default initialisation."""
    if name not in CIFAR_NAMES or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"cifar: need a name in {CIFAR_NAMES} and depth 6 n + 2, got {name}, {depth}")
    n, layers = (depth - 2) // 6, []
    slope = tat_slope_or_relu(depth - 1, tat_eta) if name == "plain_tat" else 0.0

    def conv(into, shape, out_c, stride):
        c, h, w = shape
        o = [out_c, (h - 1) // stride + 1, (w - 1) // stride + 1]
        into.append({"kind": "conv2d", "in": list(shape), "out": o, "kernel": 3, "stride": stride,
                     "padding": 1, "bias": not batch_norm, "describe": "conv2d"})
        if batch_norm:
            into.append(_bn(out_c, o))
        return o

    def act(into, shape):
        if name in ("plain_crelu", "plain_crelu_ll"):
            into.append(_act("crelu", shape))
            return [2 * shape[0], shape[1], shape[2]]
        if name == "plain_prelu_ll":
            into.append(_act("prelu", shape, slopes=shape[0]))
        elif name == "plain_tat":
            into.append(_act("leaky_relu", shape, slope=slope, gain=math.sqrt(2 / (1 + slope ** 2))))
        else:
            into.append(_act("relu", shape))
        return shape

    shape = list(input)
    if name != "resnet":
        shape = act(layers, conv(layers, shape, width, 1))
        for stage in range(3):
            for i in range(2 * n):
                shape = act(layers, conv(layers, shape, width << stage, 2 if stage and i == 0 else 1))
    else:
        shape = conv(layers, shape, width, 1)
        layers.append(_act("relu", shape))
        for stage in range(3):
            for b in range(n):
                out_c, stride = width << stage, 2 if stage and b == 0 else 1
                branch = []
                mid = conv(branch, shape, out_c, stride)
                branch.append(_act("relu", mid))
                conv(branch, mid, out_c, 1)
                if stride == 1 and out_c == shape[0]:
                    layers.append({"kind": "residual", "in": shape, "beta": 1, "branch": branch,
                                   "describe": "residual"})
                else:
                    pad = {"kind": "subsample_pad", "in": shape, "out": mid, "stride": stride,
                           "describe": "subsample_pad"}
                    layers.append({"kind": "branch_sum", "in": shape, "a": [pad], "b": branch,
                                   "describe": "branch_sum"})
                layers.append(_act("relu", mid))
                shape = mid
    layers.append(_act("global_avg_pool", shape))
    layers.append(_dense(shape[0], classes, True))
    m = build_module({"input": list(input), "layers": layers}, dtype)
    m.shatter_model = json.dumps({"family": "cifar", "name": name, "depth": depth,
                                  "classes": classes, "input": list(input), "width": width,
                                  "batch_norm": batch_norm, "ll": "orthogonal", "delta": False,
                                  "tat_eta": tat_eta})
    return looks_linear_(m) if name == "plain_crelu_ll" else m
