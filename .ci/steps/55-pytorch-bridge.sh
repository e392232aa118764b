#!/usr/bin/env bash
# The PyTorch bridge both ways (python/shatter_torch.py with Debian's torch 1.13, seconds): a
# looks-linear CReLU MLP, a resnet-BN MLP and the six CIFAR architectures at depths 8 and 14 go
# shatter -> PyTorch (load_module, strict) and, after two SGD steps in PyTorch, back (save_module
# -> load_weights into the builder's network, and load_network); evaluation outputs agree within
# 1e-5 relative to max(1, |y|) both ways. Then a CReLU MLP built and trained in PyTorch is probed
# by shatter after checking its outputs on the probe's points.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/examples/torch_roundtrip
[ -x "$bin" ] || { echo "missing $bin (build the examples first)"; exit 1; }
py=/usr/bin/python3
"$py" -c "import torch, numpy" || { echo "needs python3-torch and python3-numpy"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" write "$out"
echo "shatter -> PyTorch:"
OMP_NUM_THREADS=1 "$py" python/torch_roundtrip.py from-shatter "$out"
echo "PyTorch -> shatter:"
"$bin" check "$out"
echo "a model trained in PyTorch, probed by shatter:"
OMP_NUM_THREADS=1 "$py" python/torch_roundtrip.py train-probe "$out/trained.safetensors" \
  "$out/trained_io.safetensors"
"$bin" probe "$out/trained.safetensors" "$out/trained_io.safetensors"
