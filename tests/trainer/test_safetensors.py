#!/usr/bin/env python3
"""test_safetensors.py - models in and out: `ringtrain export safetensors`
and `ringtrain import` (docs/FORMATS.md, "safetensors"; docs/TRAINING.md,
"Moving models in and out").

1. Round trip: a trained checkpoint -> safetensors -> import gives
   parameters byte-identical to the checkpoint's (h5py), for an MLP and a
   GPT; the export of an --export-params file is the same file.
2. The written file against the format's rules, checked by the parser
   here (8-byte little-endian header length, JSON header with dtype, shape
   and data_offsets, offsets contiguous from 0 and covering the data, data
   8-byte aligned, the model's parameter order, __metadata__).
3. A PyTorch MLP (nn.Sequential with fc1/relu1/fc2/... names) saved with
   torch.save, imported, trained 10 steps here (np=1, --no-shuffle) and 10
   steps in PyTorch from the same start on the same batches: the same
   losses within 1e-5, SGD-momentum and AdamW. F16/BF16/F64 tensors are
   converted exactly as documented; a tied lm_head is accepted.
4. Mismatches (missing, unexpected, wrong shape, wrong dtype) listed in
   full, exit 2, nothing written; malformed files, output == input, a
   model_spec that contradicts --model, a wrong --init-params, and a
   python3 without torch are exit 2 with a reason."""
import collections
import json
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import learnable_data, write_dataset  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check = checker.check
ENV = {**os.environ, "RT_PYTHON": sys.executable,
       "RT_PT_HELPER": os.path.join(os.environ["RT_SOURCE_DIR"], "tools", "pt_to_safetensors.py")}


def rt(*args, env=None):
    return subprocess.run([RINGTRAIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300, env=env or ENV)


def h5_params(path):
    with h5py.File(path, "r") as f:
        out = {}
        f["params"].visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out, str(f.attrs["model_spec"])


def read_safetensors(path):
    """An independent reader of the format's rules; returns (header list of
    (name, info) in file order, metadata, {name: ndarray}) or raises
    AssertionError naming the broken rule."""
    raw = open(path, "rb").read()
    assert len(raw) >= 8, "shorter than 8 bytes"
    n = struct.unpack("<Q", raw[:8])[0]
    assert 8 + n <= len(raw), "header length past the end"
    assert (8 + n) % 8 == 0, f"data starts at {8 + n}, not 8-byte aligned"
    text = raw[8:8 + n].decode("utf-8")
    body = text.rstrip(" ")
    assert body.endswith("}") and body.startswith("{"), "header is not one JSON object padded with spaces"
    pairs = json.loads(body, object_pairs_hook=list)
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), "duplicate keys"
    meta = dict(dict(pairs).get("__metadata__", {}))
    tensors = [(k, dict(v)) for k, v in pairs if k != "__metadata__"]
    data = raw[8 + n:]
    sizes = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8}
    spans = []
    arrays = {}
    for name, info in tensors:
        assert set(info) == {"dtype", "shape", "data_offsets"}, f"{name}: keys {sorted(info)}"
        b, e = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        assert e - b == count * sizes[info["dtype"]], f"{name}: offsets {b},{e} vs shape {info['shape']}"
        spans.append((b, e, name))
        if info["dtype"] == "F32":
            arrays[name] = np.frombuffer(data[b:e], "<f4").reshape(info["shape"])
    spans.sort()
    at = 0
    for b, e, name in spans:
        assert b == at, f"{name} begins at {b}, previous end {at} (gap or overlap)"
        at = e
    assert at == len(data), f"tensors cover {at} of {len(data)} data bytes"
    return tensors, meta, arrays


def write_safetensors(path, items, meta=None, align=True):
    """A safetensors file from [(name, dtype, shape, bytes)], written here
    independently of ringtrain and of the helper."""
    header, blobs, at = {}, [], 0
    for name, dt, shape, data in items:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header).encode()
    if align:
        text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def mlp(sizes):
    """The MLP as nn.Sequential with ringtrain's names (fc1, relu1, fc2, ...)."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append((f"fc{i + 1}", torch.nn.Linear(sizes[i], sizes[i + 1])))
        if i < len(sizes) - 2:
            layers.append((f"relu{i + 1}", torch.nn.ReLU()))
    return torch.nn.Sequential(collections.OrderedDict(layers))


def test_round_trip(p):
    rng = np.random.default_rng(5)
    x, _, y = learnable_data(rng, 512, 20, 6)
    write_dataset(p("cls.h5"), x, y, 6)
    spec = "mlp:20,24,16,6"
    r = rt("train", "--model", spec, "--data", p("cls.h5"), "--batch", 16, "--steps", 8, "--threads", 1,
           "--device", "cpu", "--ckpt-dir", p("ck"), "--export-params", p("final.h5"))
    if not check(r.returncode == 0, f"train: {r.stderr}"):
        return
    ck = p("ck/ckpt-00000008.h5")
    r = rt("export", "safetensors", "--ckpt", ck, "--out", p("m.safetensors"))
    check(r.returncode == 0 and "wrote" in r.stdout, f"export from a checkpoint: {r.stdout}{r.stderr}")
    r = rt("export", "safetensors", "--ckpt", p("final.h5"), "--out", p("m2.safetensors"))
    check(r.returncode == 0, f"export from --export-params: {r.stderr}")
    check(open(p("m.safetensors"), "rb").read() == open(p("m2.safetensors"), "rb").read(),
          "the checkpoint's and the export's safetensors files are identical")
    ref, _ = h5_params(ck)

    # (2) the format's rules, read here
    try:
        tensors, meta, arrays = read_safetensors(p("m.safetensors"))
        ok = True
    except AssertionError as e:
        ok = check(False, f"format rules: {e}")
    if ok:
        check(True, "format rules")
        check([n for n, _ in tensors] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                                          "fc3.bias"], f"the model's parameter order: {[n for n, _ in tensors]}")
        check(all(i["dtype"] == "F32" for _, i in tensors), "every tensor F32")
        check(meta == {"format": "pt", "model_spec": spec}, f"__metadata__ {meta}")
        check(all(list(arrays[n].shape) == list(ref[n].shape) and np.array_equal(
            arrays[n].view(np.uint32), ref[n].view(np.uint32)) for n in ref),
            "the data equals the checkpoint's parameters, bit for bit, with their shapes")
    try:
        from safetensors.numpy import load_file  # the reference reader, where installed
        got = load_file(p("m.safetensors"))
        check(all(np.array_equal(got[n], ref[n]) for n in ref), "the safetensors package reads it")
    except ImportError:
        print("note: the safetensors package is not installed; its reader not tried")

    # (1) safetensors -> import: the checkpoint's parameters, byte for byte
    r = rt("import", "--from", p("m.safetensors"), "--out", p("back.h5"))
    if check(r.returncode == 0, f"import (spec from the metadata): {r.stdout}{r.stderr}"):
        back, bspec = h5_params(p("back.h5"))
        check(bspec == spec, f"model_spec {bspec}")
        check(sorted(back) == sorted(ref) and all(
            back[n].dtype == np.float32 and np.array_equal(back[n].view(np.uint32), ref[n].view(np.uint32))
            for n in ref), "round trip checkpoint -> safetensors -> import: parameters byte-identical")
        with h5py.File(p("back.h5"), "r") as f:
            check(f.attrs["format"] == "ringtrain-params", "the import writes a parameters export")
        r = rt("export", "safetensors", "--ckpt", p("back.h5"), "--out", p("m3.safetensors"))
        check(r.returncode == 0 and open(p("m3.safetensors"), "rb").read() == open(p("m.safetensors"), "rb").read(),
              "exporting the import again gives the same file")
        r = rt("eval", "--ckpt", p("back.h5"), "--data", p("cls.h5"), "--json", "--threads", "1")
        r2 = rt("eval", "--ckpt", ck, "--data", p("cls.h5"), "--json", "--threads", "1")
        check(r.returncode == 0 and r.stdout == r2.stdout, f"eval of the import equals the checkpoint's: {r.stdout} {r2.stdout}")
        check(not [f for f in os.listdir(p("")) if ".tmp." in f], "no temporary files left")

    # refusals of the output
    before = open(ck, "rb").read()
    r = rt("export", "safetensors", "--ckpt", ck, "--out", ck)
    check(r.returncode == 2 and open(ck, "rb").read() == before, f"export --out == --ckpt refused: {r.stderr}")
    r = rt("import", "--from", p("m.safetensors"), "--out", p("./m.safetensors"))
    check(r.returncode == 2 and "same" in r.stderr,
          f"import --out == --from refused: {r.stderr}")
    r = rt("export", "safetensors", "--ckpt", ck, "--out", p("nodir/m.safetensors"))
    check(r.returncode == 2, f"an output in a missing directory: exit 2 ({r.stderr})")
    return spec


def test_gpt_round_trip(p):
    rng = np.random.default_rng(9)
    toks = rng.integers(0, 256, 4000).astype(np.uint8)
    write_dataset(p("tok.h5"), toks, None, 256, kind="tokens")
    spec = "gpt:layers=1,dim=16,heads=2,ctx=8,vocab=256"
    r = rt("train", "--model", spec, "--data", p("tok.h5"), "--batch", 4, "--steps", 3, "--threads", 1,
           "--device", "cpu", "--export-params", p("g.h5"))
    if not check(r.returncode == 0, f"gpt train: {r.stderr}"):
        return
    r = rt("export", "safetensors", "--ckpt", p("g.h5"), "--out", p("g.safetensors"))
    check(r.returncode == 0, f"gpt export: {r.stderr}")
    ref, _ = h5_params(p("g.h5"))
    tensors, meta, arrays = read_safetensors(p("g.safetensors"))
    check("lm_head.weight" not in arrays and len(arrays) == len(ref), "gpt: the registry's names, the tied head once")
    r = rt("import", "--from", p("g.safetensors"), "--out", p("gback.h5"))
    if check(r.returncode == 0, f"gpt import: {r.stderr}"):
        back, _ = h5_params(p("gback.h5"))
        check(all(np.array_equal(back[n].view(np.uint32), ref[n].view(np.uint32)) for n in ref),
              "gpt round trip byte-identical")
    # nanoGPT's state_dict holds the head as lm_head.weight too
    sd = collections.OrderedDict((n, torch.from_numpy(arrays[n].copy())) for n, _ in tensors)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    torch.save(sd, p("nano.pt"))
    r = rt("import", "--from", p("nano.pt"), "--model", spec, "--out", p("nano.h5"))
    check(r.returncode == 0, f"a tied lm_head.weight is accepted: {r.stderr}")
    sd["lm_head.weight"] = sd["transformer.wte.weight"] + 1
    torch.save(sd, p("nano2.pt"))
    r = rt("import", "--from", p("nano2.pt"), "--model", spec, "--out", p("nano2.h5"))
    check(r.returncode == 2 and "lm_head.weight differs" in r.stderr and not os.path.exists(p("nano2.h5")),
          f"an lm_head.weight that is not the embedding is refused: {r.stderr}")
    r = rt("import", "--from", p("g.safetensors"), "--model", "gpt:layers=1,dim=16,heads=4,ctx=8,vocab=256",
           "--out", p("gh.h5"))
    check(r.returncode == 2 and "heads=2" in r.stderr, f"--model contradicting the file's model_spec: {r.stderr}")


def losses_of(path):
    out = []
    for line in open(path):
        m = json.loads(line)
        if "loss" in m:
            out.append(m["loss"])
    return out


def test_torch_training(p):
    torch.manual_seed(7)
    sizes = [12, 32, 16, 5]
    spec = "mlp:" + ",".join(map(str, sizes))
    B, steps = 8, 10
    g = torch.Generator().manual_seed(3)
    x = torch.rand(B * steps + 16, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (B * steps + 16,), generator=g)
    write_dataset(p("f32.h5"), x.numpy().astype(np.float32), y.numpy().astype(np.uint8), sizes[-1])
    for opt_name, lr, extra in (("sgd", 0.1, ["--momentum", "0.9"]), ("adamw", 3e-3, ["--weight-decay", "0.05"])):
        model = mlp(sizes)
        torch.save(model.state_dict(), p(f"start-{opt_name}.pt"))
        r = rt("import", "--from", p(f"start-{opt_name}.pt"), "--model", spec, "--out", p(f"start-{opt_name}.h5"))
        if not check(r.returncode == 0, f"import of a torch.save state_dict: {r.stdout}{r.stderr}"):
            continue
        start, _ = h5_params(p(f"start-{opt_name}.h5"))
        sd = model.state_dict()
        check(all(np.array_equal(start[n], sd[n].numpy()) for n in sd), "the imported start is the torch model's")
        r = rt("train", "--model", spec, "--data", p("f32.h5"), "--batch", B, "--steps", steps, "--no-shuffle",
               "--seed", 1, "--optimizer", opt_name, "--lr", lr, *extra, "--log-every", 1, "--threads", 1,
               "--device", "cpu", "--init-params", p(f"start-{opt_name}.h5"), "--metrics", p(f"m-{opt_name}.jsonl"),
               "--export-params", p(f"end-{opt_name}.h5"))
        if not check(r.returncode == 0 and "init: parameters from" in r.stdout, f"train --init-params: {r.stderr}"):
            continue
        ours = losses_of(p(f"m-{opt_name}.jsonl"))
        if opt_name == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
        ref = []
        for s in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[s * B:(s + 1) * B]), y[s * B:(s + 1) * B])
            loss.backward()
            opt.step()
            ref.append(loss.item())
        worst = max(abs(a - b) for a, b in zip(ours, ref)) if len(ours) == steps else float("inf")
        print(f"{opt_name}: largest loss difference against PyTorch over {steps} steps: {worst:.2e}")
        check(worst <= 1e-5, f"{opt_name}: 10 steps from the imported start, losses within 1e-5 of PyTorch's "
                             f"(worst {worst:.2e}; ours {ours[:3]}..., torch {ref[:3]}...)")
        check(abs(ours[-1] - ours[0]) > 1e-3, f"{opt_name}: the loss moved ({ours[0]} -> {ours[-1]})")
        end, _ = h5_params(p(f"end-{opt_name}.h5"))
        sd = model.state_dict()
        err = max(float(np.max(np.abs(end[n] - sd[n].numpy()))) for n in sd)
        check(err < 1e-5, f"{opt_name}: final parameters within 1e-5 of PyTorch's (max {err:.2e})")

    # the same start from a torch-free drawn model differs: --init-params matters
    r = rt("train", "--model", spec, "--data", p("f32.h5"), "--batch", B, "--steps", 1, "--no-shuffle",
           "--log-every", 1, "--threads", 1, "--device", "cpu", "--metrics", p("m-drawn.jsonl"))
    check(r.returncode == 0 and losses_of(p("m-drawn.jsonl"))[0] != losses_of(p("m-sgd.jsonl"))[0],
          "without --init-params the first loss differs")
    r = rt("train", "--model", "mlp:12,32,5", "--data", p("f32.h5"), "--batch", B, "--steps", 1, "--threads", 1,
           "--device", "cpu", "--init-params", p("start-sgd.h5"))
    check(r.returncode == 2 and "mlp:12,32,16,5" in r.stderr, f"--init-params of another model: exit 2 ({r.stderr})")
    r = rt("train", "--model", spec, "--data", p("f32.h5"), "--batch", B, "--steps", 1, "--threads", 1,
           "--device", "cpu", "--init-params", p("missing.h5"))
    check(r.returncode == 2, f"a missing --init-params file: exit 2 ({r.stderr})")

    # dtypes: F16 and BF16 widened exactly, F64 rounded to nearest
    rng = np.random.default_rng(1)
    shapes = [(32, 12), (32,), (16, 32), (16,), (5, 16), (5,)]
    names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    vals = [rng.standard_normal(s) for s in shapes]
    f16 = vals[0].astype(np.float16)
    bf16 = (vals[2].astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    items = [(names[0], "F16", shapes[0], f16.tobytes()), (names[1], "F64", shapes[1], vals[1].tobytes()),
             (names[2], "BF16", shapes[2], bf16.tobytes())]
    items += [(n, "F32", s, v.astype(np.float32).tobytes()) for n, s, v in zip(names[3:], shapes[3:], vals[3:])]
    write_safetensors(p("mixed.safetensors"), items, align=False)
    r = rt("import", "--from", p("mixed.safetensors"), "--model", spec, "--out", p("mixed.h5"))
    if check(r.returncode == 0 and "3 tensors converted" in r.stdout, f"F16/BF16/F64 import: {r.stdout}{r.stderr}"):
        got, _ = h5_params(p("mixed.h5"))
        check(np.array_equal(got["fc1.weight"], f16.astype(np.float32)), "F16 widened exactly")
        check(np.array_equal(got["fc1.bias"], vals[1].astype(np.float32)), "F64 rounded to nearest float32")
        check(np.array_equal(got["fc2.weight"].view(np.uint32), bf16.astype(np.uint32) << 16), "BF16 widened exactly")
    sub = np.array([1e-7, -6e-8, 65504, -np.inf, 0.0, -0.0], np.float16)  # subnormals, max, inf, signed zero
    w = np.zeros(shapes[0], np.float16)
    w.flat[:len(sub)] = sub
    items[0] = (names[0], "F16", shapes[0], w.tobytes())
    write_safetensors(p("sub.safetensors"), items)
    r = rt("import", "--from", p("sub.safetensors"), "--model", spec, "--out", p("sub.h5"))
    if check(r.returncode == 0, f"F16 specials: {r.stderr}"):
        got, _ = h5_params(p("sub.h5"))
        check(np.array_equal(got["fc1.weight"].view(np.uint32), w.astype(np.float32).view(np.uint32)),
              "F16 subnormals, infinities and signed zeros widened exactly")
    return spec


def test_mismatches(p, spec):
    sizes = [12, 32, 16, 5]
    sd = mlp(sizes).state_dict()
    sd["fc1.weight"] = sd["fc1.weight"].t().contiguous()      # wrong shape (transposed)
    del sd["fc2.bias"]                                         # missing
    sd["fc9.weight"] = torch.zeros(3, 3)                       # unexpected
    sd["fc3.weight"] = sd["fc3.weight"].to(torch.int64)        # wrong dtype
    torch.save(sd, p("bad.pt"))
    r = rt("import", "--from", p("bad.pt"), "--model", spec, "--out", p("bad.h5"))
    err = r.stderr
    check(r.returncode == 2, f"mismatches: exit 2 (got {r.returncode})")
    for want in ("missing: fc2.bias", "unexpected: fc9.weight", "wrong shape: fc1.weight is [12, 32]",
                 "transposed", "wrong dtype: fc3.weight is I64", "4 mismatches"):
        check(want in err, f"listed: {want!r} in {err!r}")
    check(not os.path.exists(p("bad.h5")) and not [f for f in os.listdir(p("")) if ".tmp." in f],
          "nothing written, no temporary file left")
    # the same through safetensors directly, many unexpected names: all listed
    items = [(f"extra.{i}", "F32", [1], b"\0\0\0\0") for i in range(60)]
    write_safetensors(p("many.safetensors"), items)
    r = rt("import", "--from", p("many.safetensors"), "--model", spec, "--out", p("many.h5"))
    check(r.returncode == 2 and all(f"unexpected: extra.{i} " in r.stderr for i in range(60))
          and r.stderr.count("missing: ") == 6, f"66 mismatches listed in full ({len(r.stderr)} bytes)")

    # malformed files: exit 2 with the reason
    good = write_safetensors(p("ok.safetensors"), [("fc1.bias", "F32", [32], b"\0" * 128)])
    raw = open(good, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    cases = {  # what: (bytes, the reason expected)
        "short": (b"\1\2\3", "shorter than the 8-byte"),
        "too long a header": (struct.pack("<Q", 1 << 40) + raw[8:], "100 MB"),
        "past the end": (struct.pack("<Q", len(raw)) + raw[8:], "past the end"),
        "bad JSON": (raw[:8] + b"{" + b" " * (n - 1) + raw[8 + n:], "bad JSON header"),
        "truncated data": (raw[:-4], "cover 128 bytes of data but the file has 124"),
        "a size that is not the shape's": (raw[:8] + raw[8:8 + n].replace(b"[32]", b"[31]") + raw[8 + n:],
                                           "needs 124"),
    }
    for offs, why in (([0, 8], [4, 12]), "overlaps"), (([0, 8], [12, 20]), "leaves a gap"):
        hdr = {"a": {"dtype": "F32", "shape": [2], "data_offsets": offs[0]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": offs[1]}}
        t = json.dumps(hdr).encode()
        cases[why] = (struct.pack("<Q", len(t)) + t + b"\0" * offs[1][1], why)
    for what, (data, why) in cases.items():
        open(p("mal.safetensors"), "wb").write(data)
        r = rt("import", "--from", p("mal.safetensors"), "--model", spec, "--out", p("mal.h5"))
        check(r.returncode == 2 and "mal.safetensors" in r.stderr and why in r.stderr
              and not os.path.exists(p("mal.h5")),
              f"malformed ({what}): exit 2 naming the file and {why!r} ({r.returncode}: {r.stderr.strip()})")
    r = rt("import", "--from", p("ok.safetensors"), "--out", p("nospec.h5"))
    check(r.returncode == 2 and "--model" in r.stderr, f"no --model and no model_spec: {r.stderr}")

    # a .pt that is not a state_dict, and a python3 without torch
    torch.save([1, 2, 3], p("list.pt"))
    r = rt("import", "--from", p("list.pt"), "--model", spec, "--out", p("l.h5"))
    check(r.returncode == 2 and "not a state_dict" in r.stderr, f"a .pt list refused: {r.stderr}")
    fake = p("fake")
    os.makedirs(fake, exist_ok=True)
    open(os.path.join(fake, "torch.py"), "w").write("raise ImportError('no torch here (test)')\n")
    r = rt("import", "--from", p("start-sgd.pt"), "--model", spec, "--out", p("nt.h5"),
           env={**ENV, "PYTHONPATH": fake})
    check(r.returncode == 2 and "PyTorch" in r.stderr and "RT_PYTHON" in r.stderr,
          f"without torch: exit 2 saying what to do ({r.stderr.strip()})")
    r = rt("import", "--help")
    check(r.returncode == 0 and "--from" in r.stdout, "import --help")
    r = rt("export", "safetensors", "--help")
    check(r.returncode == 0 and "--ckpt" in r.stdout, "export safetensors --help")
    r = rt("export", "onnx-nonexistent")
    check(r.returncode == 2, "an unknown export format: exit 2")


def main():
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)  # noqa: E731
        test_round_trip(p)
        test_gpt_round_trip(p)
        spec = test_torch_training(p)
        test_mismatches(p, spec)
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
