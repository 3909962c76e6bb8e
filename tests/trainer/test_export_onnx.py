#!/usr/bin/env python3
"""test_export_onnx.py - `ringtrain export onnx` end to end, for an MLP
(mlp:784,64,32,10, 30 steps on Fashion-MNIST's test images, or on
generated uint8 records where dataset-fashion-mnist is not installed) and
a GPT (gpt:layers=2,dim=48,heads=3,ctx=24, 30 steps on the fortunes
corpus as bytes, or on generated text), each trained here with
`ringtrain train --ckpt-dir`:

- each export with --batch dynamic and --batch N passes
  onnx.checker.check_model(full_check=True) (Debian's python3-onnx), is
  opset 17 / IR 8, has every parameter as a float32 initializer under its
  state_dict name with the checkpoint's values, and the documented input
  and output (mlp: float32 [batch, 784] -> logits [batch, 10]; gpt: int64
  [batch, 24] -> logits [batch, 24, 256], "batch" symbolic or fixed);
- ONNX Runtime (npm onnxruntime-node, CPU, installed here into the build
  tree) computes logits on real inputs (64 Fashion-MNIST rows / 255, 6
  fortunes windows) that equal ringtrain's own CPU forward (saved_logits,
  the checkpoint read as export reads it) and float64 PyTorch on the
  checkpoint converted by tools/ckpt_to_torch.py, within 1e-5 of the
  logits' largest magnitude (max|a-b| / max|b|, printed); the argmax agrees
  everywhere; the fixed-batch model runs its batch and refuses another;
- bad input exits 2 with one line on stderr: a missing --ckpt, --batch 0,
  -3 or "lots", an unknown format word, no format, a missing file, an
  --out in a missing folder (and nothing is left there); --help exits 0.

ONNX Runtime is installed with `npm install onnxruntime-node@1.30.0`
(ONNXRUNTIME_NODE_INSTALL=skip: its CPU library is in the package; the
skip stops the optional CUDA download) once per build tree. An install
that fails fails this test: it does not skip."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import rt_testlib  # noqa: E402
import gpt_reference  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
SAVED_LOGITS = sys.argv[1]
SOURCE = os.environ["RT_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE, "tools"))
import ckpt_to_torch  # noqa: E402

ORT_VERSION = "1.30.0"
ORT_DIR = os.path.join(os.environ.get("RT_BINARY_DIR", tempfile.gettempdir()), "tests",
                       "onnxruntime-node")
RUNNER = os.path.join(HERE, "onnx_ort_run.js")
FASHION = "/usr/share/datasets/fashion-mnist"
FORTUNES = "/usr/share/games/fortunes/fortunes"
MLP_SPEC = "mlp:784,64,32,10"
GPT_SPEC = "gpt:layers=2,dim=48,heads=3,ctx=24"
CTX, VOCAB = 24, 256
TOL = 1e-5

checker = rt_testlib.Checks()
check = checker.check
torch.set_num_threads(1)


def run(cmd, timeout=300, env=None):
    return rt_testlib.run([str(c) for c in cmd], timeout=timeout, env=env)


def install_ort():
    """onnxruntime-node in ORT_DIR (reused when present); None on failure,
    with the reason recorded as a failed check."""
    if not check(shutil.which("node") and shutil.which("npm"),
                 "node and npm are installed (.ci/install-deps.sh installs nodejs and npm)"):
        return None
    mod = os.path.join(ORT_DIR, "node_modules", "onnxruntime-node")
    if os.path.isdir(mod):
        # an earlier install; one cut short is removed and done again
        r = run(["node", "-e", "require('onnxruntime-node')"],
                env={"NODE_PATH": os.path.join(ORT_DIR, "node_modules")})
        if r.returncode == 0:
            return os.path.join(ORT_DIR, "node_modules")
        shutil.rmtree(mod, ignore_errors=True)
    os.makedirs(ORT_DIR, exist_ok=True)
    r = run(["npm", "install", "--prefix", ORT_DIR, "--no-audit", "--no-fund", "--no-save",
             f"onnxruntime-node@{ORT_VERSION}"], timeout=600, env={"ONNXRUNTIME_NODE_INSTALL": "skip"})
    if not check(r.returncode == 0 and os.path.isdir(mod),
                 f"npm install onnxruntime-node@{ORT_VERSION} into {ORT_DIR} (needs the npm "
                 f"registry): rc {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}"):
        shutil.rmtree(mod, ignore_errors=True)
        return None
    return os.path.join(ORT_DIR, "node_modules")


def ort_logits(node_path, model, name, array, d):
    """The model's first output on array, computed by ONNX Runtime."""
    inp, out = os.path.join(d, "ort_in.bin"), os.path.join(d, "ort_out.bin")
    array.tofile(inp)
    kind = "int64" if array.dtype == np.int64 else "float32"
    r = run(["node", RUNNER, model, name, kind, ",".join(map(str, array.shape)), inp, out],
            env={"NODE_PATH": node_path})
    if r.returncode != 0:
        return None, r.stderr.strip()
    dims = json.loads(r.stdout.strip().splitlines()[-1])["dims"]
    return np.fromfile(out, dtype=np.float32).reshape(dims), ""


def ringtrain_logits(ckpt, array, d):
    """ringtrain's CPU forward of the checkpoint (saved_logits)."""
    inp, out = os.path.join(d, "rt_in.bin"), os.path.join(d, "rt_out.bin")
    array.tofile(inp)
    r = run([SAVED_LOGITS, ckpt, inp, array.shape[0], out])
    assert r.returncode == 0, r.stderr
    return np.fromfile(out, dtype=np.float32)


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def check_model_file(path, spec, ckpt, batch, in_name, in_type, in_dims, out_dims):
    """The checker, opset and IR, initializers = the checkpoint's params,
    the documented input and output."""
    tag = f"{spec} --batch {batch or 'dynamic'}"
    try:
        onnx.checker.check_model(path, full_check=True)
        ok, why = True, ""
    except Exception as e:  # the checker's own exception types vary by version
        ok, why = False, str(e)
    check(ok, f"{tag}: onnx.checker.check_model(full_check=True) accepts it {why}")
    m = onnx.load(path)
    check(m.ir_version == 8 and [(o.domain, o.version) for o in m.opset_import] == [("", 17)],
          f"{tag}: IR {m.ir_version}, opsets {[(o.domain, o.version) for o in m.opset_import]}")
    sd, _ = ckpt_to_torch.read_state_dict(ckpt)
    sd.pop("lm_head.weight", None)   # tied: the graph uses wte
    inits = {t.name: t for t in m.graph.initializer}
    params = {n: t for n, t in inits.items() if not n.startswith("const.")}
    check(sorted(params) == sorted(sd), f"{tag}: initializers are the parameters: {sorted(params)}")
    same = all(n in params and params[n].data_type == onnx.TensorProto.FLOAT and
               np.array_equal(onnx.numpy_helper.to_array(params[n]), sd[n].numpy()) for n in sd)
    check(same, f"{tag}: every initializer is float32 with the checkpoint's values")

    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in vi.type.tensor_type.shape.dim]
    b = batch or "batch"
    (i,), (o,) = m.graph.input, m.graph.output
    check(i.name == in_name and i.type.tensor_type.elem_type == in_type and dims(i) == [b] + in_dims,
          f"{tag}: input {i.name} type {i.type.tensor_type.elem_type} {dims(i)}")
    check(o.name == "logits" and o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and
          dims(o) == [b] + out_dims, f"{tag}: output {o.name} {dims(o)}")


def compare(tag, ort, ours, ref):
    """ONNX Runtime against ringtrain and float64 PyTorch; all three agree."""
    ours = ours.reshape(ref.shape)
    r_ours, r_ref, r_base = rel(ort, ours), rel(ort, ref), rel(ours, ref)
    print(f"{tag}: max|a-b|/max|b|: ORT vs ringtrain {r_ours:.3g}, ORT vs PyTorch {r_ref:.3g}, "
          f"ringtrain vs PyTorch {r_base:.3g} (max |logit| {np.abs(ref).max():.3g})")
    check(r_ours <= TOL, f"{tag}: ONNX Runtime = ringtrain's CPU forward ({r_ours:.3g} <= {TOL})")
    check(r_ref <= TOL, f"{tag}: ONNX Runtime = PyTorch ({r_ref:.3g} <= {TOL})")
    check(r_base <= TOL, f"{tag}: ringtrain = PyTorch ({r_base:.3g} <= {TOL})")
    agree = (ort.argmax(-1) == ref.argmax(-1)).mean()
    check(agree == 1.0, f"{tag}: argmax agrees on {agree:.4f} of the rows")


def train(d, spec, data, batch):
    r = run([RINGTRAIN, "train", "--model", spec, "--data", data, "--batch", batch, "--steps", 30,
             "--lr", "3e-3", "--threads", 1, "--ckpt-dir", os.path.join(d, spec[:3])])
    ck = os.path.join(d, spec[:3], "ckpt-00000030.h5")
    assert r.returncode == 0 and os.path.exists(ck), r.stderr
    return ck


def export(ckpt, out, batch=None):
    cmd = [RINGTRAIN, "export", "onnx", "--ckpt", ckpt, "--out", out]
    r = run(cmd + (["--batch", batch] if batch else []))
    check(r.returncode == 0 and os.path.exists(out), f"export {out}: rc {r.returncode} {r.stderr}")


def mlp_part(d, node_path):
    if os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")):
        data = os.path.join(d, "fashion.h5")
        r = run([RINGTRAIN, "data", "import-idx", "--images",
                 os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"), "--labels",
                 os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"), "--out", data])
        assert r.returncode == 0, r.stderr
        import h5py
        with h5py.File(data, "r") as f:
            rows = f["inputs"][5000:5064].reshape(64, -1)
        print("mlp: Fashion-MNIST test images")
    else:
        x, _, y = rt_testlib.learnable_data(np.random.default_rng(1), 2000, 784, 10)
        data = rt_testlib.write_dataset(os.path.join(d, "gen.h5"), x, y, 10)
        rows = x[:64]
        print(f"mlp: generated records ({FASHION} is not installed)")
    ck = train(d, MLP_SPEC, data, 32)
    dyn, fixed = os.path.join(d, "mlp.onnx"), os.path.join(d, "mlp8.onnx")
    export(ck, dyn)
    export(ck, fixed, 8)
    check_model_file(dyn, MLP_SPEC, ck, None, "input", onnx.TensorProto.FLOAT, [784], [10])
    check_model_file(fixed, MLP_SPEC, ck, 8, "input", onnx.TensorProto.FLOAT, [784], [10])

    x = (rows.astype(np.float32) / 255.0).astype(np.float32)   # what the loader feeds
    sd, _ = ckpt_to_torch.read_state_dict(ck)
    model = ckpt_to_torch.mlp_from_spec(MLP_SPEC).double()
    model.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).double()).numpy()
    ours = ringtrain_logits(ck, x, d)
    if node_path:
        ort, why = ort_logits(node_path, dyn, "input", x, d)
        if check(ort is not None and ort.shape == (64, 10), f"mlp dynamic: ORT ran: {why}"):
            compare("mlp dynamic, 64 rows", ort, ours, ref)
        ort, why = ort_logits(node_path, fixed, "input", x[:8], d)
        if check(ort is not None and ort.shape == (8, 10), f"mlp --batch 8: ORT ran: {why}"):
            compare("mlp --batch 8", ort, ours[:80], ref[:8])
        ort, why = ort_logits(node_path, fixed, "input", x[:3], d)
        check(ort is None, f"mlp --batch 8: ORT refuses 3 rows ({why[:120]})")
    return ck


def gpt_part(d, node_path):
    if os.path.exists(FORTUNES):
        src = FORTUNES
        print("gpt: the fortunes corpus")
    else:
        src = os.path.join(d, "text.txt")
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs"]
        rng = np.random.default_rng(2)
        with open(src, "w") as f:
            f.write(" ".join(words[i] for i in rng.integers(0, len(words), 3000)))
        print(f"gpt: generated text ({FORTUNES} is not installed)")
    data = os.path.join(d, "tokens.h5")
    r = run([RINGTRAIN, "data", "import-text", "--input", src, "--out", data])
    assert r.returncode == 0, r.stderr
    ck = train(d, GPT_SPEC, data, 4)
    dyn, fixed = os.path.join(d, "gpt.onnx"), os.path.join(d, "gpt4.onnx")
    export(ck, dyn)
    export(ck, fixed, 4)
    check_model_file(dyn, GPT_SPEC, ck, None, "tokens", onnx.TensorProto.INT64, [CTX], [CTX, VOCAB])
    check_model_file(fixed, GPT_SPEC, ck, 4, "tokens", onnx.TensorProto.INT64, [CTX], [CTX, VOCAB])

    import h5py
    with h5py.File(data, "r") as f:
        tokens = f["tokens"][()]
    starts = np.random.default_rng(3).integers(0, len(tokens) - CTX, 6)
    windows = np.stack([tokens[s:s + CTX] for s in starts]).astype(np.int64)
    sd, _ = ckpt_to_torch.read_state_dict(ck)
    model = gpt_reference.from_spec(GPT_SPEC, torch.float64)
    model.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    with torch.no_grad():
        ref = model(torch.from_numpy(windows))[0].numpy()
    ours = ringtrain_logits(ck, windows.astype(np.int32), d)
    if node_path:
        ort, why = ort_logits(node_path, dyn, "tokens", windows, d)
        if check(ort is not None and ort.shape == (6, CTX, VOCAB), f"gpt dynamic: ORT ran: {why}"):
            compare("gpt dynamic, 6 windows", ort, ours, ref)
        ort, why = ort_logits(node_path, fixed, "tokens", windows[:4], d)
        if check(ort is not None and ort.shape == (4, CTX, VOCAB), f"gpt --batch 4: ORT ran: {why}"):
            compare("gpt --batch 4", ort, ours[:4 * CTX * VOCAB], ref[:4])


def bad_input(d, ck):
    out = os.path.join(d, "bad.onnx")
    cases = [
        ("missing --ckpt", ["onnx", "--out", out]),
        ("missing --out", ["onnx", "--ckpt", ck]),
        ("--batch 0", ["onnx", "--ckpt", ck, "--out", out, "--batch", "0"]),
        ("--batch -3", ["onnx", "--ckpt", ck, "--out", out, "--batch", "-3"]),
        ("--batch lots", ["onnx", "--ckpt", ck, "--out", out, "--batch", "lots"]),
        ("unknown format", ["tflite", "--ckpt", ck, "--out", out]),
        ("no format", []),
        ("missing file", ["onnx", "--ckpt", os.path.join(d, "nope.h5"), "--out", out]),
        ("--out in a missing folder", ["onnx", "--ckpt", ck, "--out", os.path.join(d, "no", "m.onnx")]),
        ("unknown flag", ["onnx", "--ckpt", ck, "--out", out, "--opset", "18"]),
    ]
    for name, args in cases:
        r = run([RINGTRAIN, "export"] + args)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and lines and lines[-1].startswith("ringtrain export"),
              f"{name}: exit 2 with a reason (rc {r.returncode}, {r.stderr.strip()[-300:]!r})")
    check(not os.path.exists(out), "no file written by a refused export")
    check(not os.path.exists(os.path.join(d, "no")), "nothing left for an --out that cannot be written")
    for args in (["--help"], ["onnx", "--help"]):
        r = run([RINGTRAIN, "export"] + args)
        check(r.returncode == 0 and "onnx" in r.stdout, f"export {' '.join(args)}: exit 0, usage")


def main():
    node_path = install_ort()
    with tempfile.TemporaryDirectory() as d:
        ck = mlp_part(d, node_path)
        gpt_part(d, node_path)
        bad_input(d, ck)
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
