#!/usr/bin/python3
"""ckpt_to_torch.py - converts a ringtrain checkpoint (HDF5) into a PyTorch
state_dict file, so that `model.load_state_dict(torch.load(OUT))` works for
a PyTorch model with the same parameter names.

  /usr/bin/python3 tools/ckpt_to_torch.py CKPT.h5 OUT.pt [--verify]

Only /params is converted (the parameters, named as in PyTorch); optimizer,
sampler and RNG state stay in the checkpoint. Per model kind:

- mlp:I,H1,...,O: fc1.weight [out, in], fc1.bias [out], fc2.weight, ...
  in that order; mlp_from_spec below builds the matching module.
- gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]: nanoGPT's state_dict in
  nanoGPT's order (transformer.wte.weight [V, D], transformer.wpe.weight
  [T, D], transformer.h.<i>.{ln_1, attn.c_attn, attn.c_proj, ln_2,
  mlp.c_fc, mlp.c_proj}.{weight, bias} with Linear weights [out, in],
  transformer.ln_f.*), plus lm_head.weight: the checkpoint stores the tied
  output head once, as transformer.wte.weight, and the converter adds
  lm_head.weight as that same tensor (saved once by torch.save). So it loads
  with strict=True into nanoGPT's GPT(GPTConfig(n_layer=L, n_embd=D,
  n_head=H, block_size=T, vocab_size=V, bias=True)) on PyTorch >= 2.0.
  (On older PyTorch nanoGPT registers a causal-mask buffer
  transformer.h.<i>.attn.bias that no checkpoint holds: load with
  strict=False there, or add the buffers.) tests/trainer/gpt_reference.py
  is such a module.

--verify recomputes every parameter's CRC-32C in Python first (slow for
large models; `ringtrain ckpt verify` does the same at disk speed). The
model spec is printed so the matching PyTorch model can be built.
"""
import argparse
import collections
import re
import sys

import h5py
import numpy as np
import torch

FORMAT = "ringtrain-checkpoint"
FORMAT_VERSION = 1


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), table-driven; see docs/FORMATS.md, "Checkpoint file"."""
    table = crc32c.table
    c = 0xFFFFFFFF
    for byte in data:
        c = (c >> 8) ^ table[(c ^ byte) & 0xFF]
    return c ^ 0xFFFFFFFF


def _crc_table():
    t = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


crc32c.table = _crc_table()


def _natural_key(name):
    """PyTorch's order: layers by number (fc2 before fc10), weight before bias."""
    layer, _, leaf = name.rpartition(".")
    return ([int(p) if p.isdigit() else p for p in re.split(r"(\d+)", layer)],
            {"weight": 0, "bias": 1}.get(leaf, 2), leaf)


def gpt_param_names(spec):
    """nanoGPT's state_dict names of ringtrain's `gpt:` spec, in nanoGPT's
    order, lm_head.weight (tied to transformer.wte.weight) last."""
    m = re.fullmatch(r"gpt:(.*)", spec)
    if not m:
        raise ValueError("not a GPT spec: %r" % spec)
    layers = int(dict(kv.split("=", 1) for kv in m.group(1).split(","))["layers"])
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(layers):
        for leaf in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names += ["transformer.h.%d.%s.weight" % (i, leaf), "transformer.h.%d.%s.bias" % (i, leaf)]
    return names + ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]


def read_state_dict(path, verify=False):
    """Returns (OrderedDict name -> tensor, model_spec) from a checkpoint:
    every /params dataset, in the PyTorch module's order; for a gpt model
    also lm_head.weight, the very tensor of transformer.wte.weight."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError("%s is not a ringtrain checkpoint" % path)
        version = int(f.attrs["format_version"])
        if version > FORMAT_VERSION:
            raise ValueError("%s has checkpoint format_version %d; this converter reads up to %d"
                             % (path, version, FORMAT_VERSION))
        spec = str(f.attrs["model_spec"])
        names = []
        f["params"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        gpt = spec.startswith("gpt:")
        if gpt:
            order = gpt_param_names(spec)
            if sorted(names) != sorted(order[:-1]):
                raise ValueError("%s: /params does not hold the tensors of %s (extra: %s; missing: %s)"
                                 % (path, spec, sorted(set(names) - set(order)) or "none",
                                    sorted(set(order[:-1]) - set(names)) or "none"))
            names = order[:-1]
        else:
            names = sorted(names, key=_natural_key)
        sd = collections.OrderedDict()
        for n in names:
            ds = f["params"][n]
            arr = np.ascontiguousarray(ds[()])
            if verify and crc32c(arr.tobytes()) != int(ds.attrs["crc32c"]):
                raise ValueError("%s: params/%s fails its checksum" % (path, n))
            sd[n] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")))
        if gpt:
            # the tied head: the same tensor, so the file stores it once
            sd["lm_head.weight"] = sd["transformer.wte.weight"]
        return sd, spec


def mlp_from_spec(spec):
    """The PyTorch MLP of ringtrain's `mlp:I,H1,...,O` spec: Linear layers
    fc1..fcN with ReLU between them (no ReLU after the last)."""
    m = re.fullmatch(r"mlp:(\d+(?:,\d+)+)", spec)
    if not m:
        raise ValueError("not an MLP spec: %r" % spec)
    sizes = [int(s) for s in m.group(1).split(",")]

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.n = len(sizes) - 1
            for i in range(self.n):
                setattr(self, "fc%d" % (i + 1), torch.nn.Linear(sizes[i], sizes[i + 1]))

        def forward(self, x):
            x = x.reshape(x.shape[0], -1)
            for i in range(self.n):
                x = getattr(self, "fc%d" % (i + 1))(x)
                if i + 1 < self.n:
                    x = torch.relu(x)
            return x

    return MLP()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--verify", action="store_true", help="check each parameter's CRC-32C first")
    a = ap.parse_args()
    try:
        sd, spec = read_state_dict(a.ckpt, a.verify)
    except (OSError, ValueError, KeyError) as e:
        print("ckpt_to_torch: %s" % e, file=sys.stderr)
        return 1
    torch.save(sd, a.out)
    unique = {id(t): t for t in sd.values()}.values()  # a tied tensor counts once
    print("%s: %d tensors, %d parameters, model %s%s" % (
        a.out, len(sd), sum(t.numel() for t in unique), spec,
        " (lm_head.weight is transformer.wte.weight)" if "lm_head.weight" in sd else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
