#!/usr/bin/env python3
"""test_ckpt_torch_eval.py - a checkpoint written by `ringtrain train`
(mlp:32,48,10, 60 steps, np=1), converted by tools/ckpt_to_torch.py and
loaded into the PyTorch MLP (mlp_from_spec, load_state_dict strict), gives
the same evaluation accuracy (same number of correct records) and loss
(within 1e-5 relative) as `ringtrain eval --ckpt` on it, over a held-out set
(PyTorch CPU is the oracle). `ringtrain eval` checks the checksums of what
it reads: a flipped byte in a /params dataset is refused (exit 2) naming the
dataset."""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

RINGTRAIN = os.environ["RINGTRAIN"]
TOOL = os.path.join(os.environ["RT_SOURCE_DIR"], "tools", "ckpt_to_torch.py")
sys.path.insert(0, os.path.dirname(TOOL))
import ckpt_to_torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import write_dataset  # noqa: E402

checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def main():
    rng = np.random.default_rng(3)
    F, C = 32, 10
    w = rng.standard_normal((F, C))
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        x = rng.integers(0, 256, (2000, F), dtype=np.uint8)
        y = ((x / 255.0) @ w + 0.3 * rng.standard_normal((2000, C))).argmax(1).astype(np.uint8)
        write_dataset(p("train.h5"), x, y, C)
        xe = rng.integers(0, 256, (777, F), dtype=np.uint8)
        ye = ((xe / 255.0) @ w).argmax(1).astype(np.uint8)
        write_dataset(p("eval.h5"), xe, ye, C)
        spec = f"mlp:{F},48,{C}"
        r = subprocess.run([RINGTRAIN, "train", "--model", spec, "--data", p("train.h5"), "--batch", "32",
                            "--steps", "60", "--lr", "3e-3", "--threads", "1", "--ckpt-dir", p("ck")],
                           capture_output=True, text=True, timeout=120)
        ck = p("ck/ckpt-00000060.h5")
        if not check(r.returncode == 0 and os.path.exists(ck), f"train wrote {ck}: {r.stderr}"):
            return 1
        r = subprocess.run([RINGTRAIN, "eval", "--ckpt", ck, "--data", p("eval.h5"), "--json"],
                           capture_output=True, text=True, timeout=120)
        if not check(r.returncode == 0, f"ringtrain eval: {r.stderr}"):
            return 1
        ours = json.loads(r.stdout.strip().splitlines()[-1])
        r = subprocess.run([sys.executable, TOOL, ck, p("model.pt")], capture_output=True, text=True)
        if not check(r.returncode == 0, f"converter: {r.stdout}{r.stderr}"):
            return 1
        model = ckpt_to_torch.mlp_from_spec(spec)
        model.load_state_dict(torch.load(p("model.pt")), strict=True)
        with torch.no_grad():
            logits = model(torch.from_numpy(xe.astype(np.float32) / 255.0))
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ye.astype(np.int64))).item()
            correct = int((logits.argmax(1).numpy() == ye).sum())
        acc = correct / len(ye)
        print(f"ringtrain eval: accuracy {ours['eval_accuracy']:.6f} loss {ours['eval_loss']:.7g}; "
              f"PyTorch: accuracy {acc:.6f} loss {loss:.7g}")
        check(ours["records"] == len(ye), f"records {ours['records']}")
        check(round(ours["eval_accuracy"] * len(ye)) == correct,
              f"same number of correct records: {ours['eval_accuracy'] * len(ye)} vs {correct}")
        check(abs(ours["eval_loss"] - loss) <= 1e-5 * abs(loss), f"loss {ours['eval_loss']} vs {loss}")
        check(acc > 0.3, f"the model learned something (accuracy {acc})")

        # a corrupt parameter is refused by eval, naming the dataset
        with h5py.File(ck, "r") as f:
            off = f["params/fc2.weight"].id.get_offset()
        with open(ck, "r+b") as f:
            f.seek(off + 9)
            b = f.read(1)
            f.seek(off + 9)
            f.write(bytes([b[0] ^ 0x10]))
        r = subprocess.run([RINGTRAIN, "eval", "--ckpt", ck, "--data", p("eval.h5")],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 2 and "params/fc2.weight" in r.stderr and "checksum" in r.stderr,
              f"corrupt checkpoint refused by eval: {r.returncode} {r.stderr}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
