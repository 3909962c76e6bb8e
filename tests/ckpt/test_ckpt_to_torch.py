#!/usr/bin/python3
"""test_ckpt_to_torch.py - tools/ckpt_to_torch.py turns a checkpoint into a
state_dict that h5py agrees with tensor for tensor, that loads strictly into
the PyTorch MLP of the checkpoint's model spec, and whose forward pass
equals a numpy forward pass over the h5py arrays. (The comparison of
evaluation accuracy with `ringtrain eval` comes with the trainer.)"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
tool = os.path.join(os.environ["RT_SOURCE_DIR"], "tools", "ckpt_to_torch.py")
sys.path.insert(0, os.path.dirname(tool))
import ckpt_to_torch  # noqa: E402

sys.path.insert(0, os.path.join(here, ".."))
import rt_testlib  # noqa: E402

driver = sys.argv[1]
checker = rt_testlib.Checks(fail_tag="FAIL:")
expect, failures = checker.check, checker.failures


with tempfile.TemporaryDirectory() as d:
    r = subprocess.run([driver, "write", d, "9", "--in", "8", "--hidden", "16", "--out", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ck = os.path.join(d, "ckpt-00000009.h5")
    out = os.path.join(d, "model.pt")
    r = subprocess.run([sys.executable, tool, ck, out, "--verify"], capture_output=True, text=True)
    expect(r.returncode == 0 and "model mlp:8,16,3" in r.stdout, "convert: %s %s" % (r.stdout, r.stderr))
    sd = torch.load(out)
    with h5py.File(ck, "r") as f:
        names = sorted(f["params"].keys())
        expect(list(sd.keys()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], "keys %s" % list(sd))
        for n in names:
            expect(np.array_equal(sd[n].numpy(), f["params"][n][()]), "tensor %s equals h5py" % n)
        w1, b1 = f["params/fc1.weight"][()], f["params/fc1.bias"][()]
        w2, b2 = f["params/fc2.weight"][()], f["params/fc2.bias"][()]
        spec = f.attrs["model_spec"]
    model = ckpt_to_torch.mlp_from_spec(spec)
    missing = model.load_state_dict(sd, strict=True)
    expect(not missing.missing_keys and not missing.unexpected_keys, "strict load")
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    want = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    got = model(torch.from_numpy(x)).detach().numpy()
    expect(np.allclose(got, want, rtol=1e-5, atol=1e-4), "forward equals numpy: %s vs %s" % (got[0], want[0]))

    # a corrupted parameter is caught by --verify
    with h5py.File(ck, "r") as f:
        off = f["params/fc2.bias"].id.get_offset()
    with open(ck, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x40]))
    r = subprocess.run([sys.executable, tool, ck, out, "--verify"], capture_output=True, text=True)
    expect(r.returncode == 1 and "params/fc2.bias fails its checksum" in r.stderr, "verify: " + r.stderr)

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
