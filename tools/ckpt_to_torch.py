#!/usr/bin/python3
"""ckpt_to_torch.py - converts a ringtrain checkpoint (HDF5) into a PyTorch
state_dict file, so that `model.load_state_dict(torch.load(OUT))` works for
a PyTorch model with the same layer names (fc1, fc2, ...).

  /usr/bin/python3 tools/ckpt_to_torch.py CKPT.h5 OUT.pt [--verify]

Only /params is converted (the parameters, named as in PyTorch: fc1.weight
[out, in], fc1.bias [out]); optimizer, sampler and RNG state stay in the
checkpoint. --verify recomputes every parameter's CRC-32C in Python first
(slow for large models; `ringtrain ckpt verify` does the same at disk
speed). The model spec is printed so the matching PyTorch model can be
built (mlp_from_spec below builds the MLP).
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


def read_state_dict(path, verify=False):
    """Returns (OrderedDict name -> tensor, model_spec) from a checkpoint."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError("%s is not a ringtrain checkpoint" % path)
        version = int(f.attrs["format_version"])
        if version > FORMAT_VERSION:
            raise ValueError("%s has checkpoint format_version %d; this converter reads up to %d"
                             % (path, version, FORMAT_VERSION))
        names = []
        f["params"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        sd = collections.OrderedDict()
        for n in sorted(names, key=_natural_key):
            ds = f["params"][n]
            arr = np.ascontiguousarray(ds[()])
            if verify and crc32c(arr.tobytes()) != int(ds.attrs["crc32c"]):
                raise ValueError("%s: params/%s fails its checksum" % (path, n))
            sd[n] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")))
        return sd, str(f.attrs["model_spec"])


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
    print("%s: %d tensors, %d parameters, model %s" % (a.out, len(sd), sum(t.numel() for t in sd.values()), spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
