#!/usr/bin/python3
"""test_ckpt_h5py.py - h5py reads every dataset and attribute of a checkpoint
in the documented layout (docs/FORMATS.md, "Checkpoint file"): root attributes and their
types, the metadata checksum, each dataset's dtype, shape, contiguous
layout, values (closed form, numpy) and crc32c attribute (recomputed in
Python); and `ringtrain ckpt inspect` lists them."""
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crc32c_ref import crc32c  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

driver = sys.argv[1]
ringtrain = rt_testlib.ringtrain()
checker = rt_testlib.Checks(fail_tag="FAIL:")
expect, failures = checker.check, checker.failures


IN, HID, OUT, STEP = 8, 16, 3, 42
with tempfile.TemporaryDirectory() as d:
    r = subprocess.run([driver, "write", d, str(STEP)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    path = os.path.join(d, "ckpt-%08d.h5" % STEP)
    expect(os.listdir(d) == ["ckpt-%08d.h5" % STEP], "only the final file: %s" % os.listdir(d))

    # the closed form of tests/ckpt/synth_state.h
    names = []
    for g in ("params", "optimizer/m", "optimizer/v"):
        names += [(g + "/fc1.weight", (HID, IN)), (g + "/fc1.bias", (HID,)),
                  (g + "/fc2.weight", (OUT, HID)), (g + "/fc2.bias", (OUT,))]
    want = {}
    for j, (n, shape) in enumerate(names):
        k = np.arange(int(np.prod(shape)))
        v = (k % 1000).astype(np.float32) * np.float32(0.001) + np.float32(STEP) + np.float32(0.25 * j)
        want[n] = ("<f4", v.reshape(shape))
    want["optimizer/step"] = ("<i8", np.int64(STEP))
    want["optimizer/lr"] = ("<f8", np.float64(0.001))
    want["data/seed"] = ("<i8", np.int64(1234))
    want["data/epoch"] = ("<i8", np.int64(STEP // 10))
    want["data/position"] = ("<i8", np.int64(STEP * 32))
    want["data/shard"] = ("<i4", np.array([0, 1], np.int32))
    want["rng/state"] = ("<u8", np.array([STEP, 0x9E3779B97F4A7C15 ^ STEP, 2**64 - 1, 7], np.uint64))
    want["rng/counter"] = ("<u4", np.array([STEP, 1], np.uint32))
    want["rng/flags"] = ("|u1", np.array([3, 53, 103, 153, 203], np.uint8))

    with h5py.File(path, "r") as f:
        a = f.attrs
        expect(a["format"] == "ringtrain-checkpoint" and isinstance(a["format"], str), "format %r" % a["format"])
        for key, val in (("dataset_count", len(want)), ("format_version", 1), ("step", STEP), ("epoch", STEP // 10), ("world_size", 2)):
            expect(a[key] == val and a[key].dtype == np.dtype("<i8"), "%s = %r" % (key, a[key]))
        expect(a["model_spec"] == "mlp:%d,%d,%d" % (IN, HID, OUT), "model_spec %r" % a["model_spec"])
        cfg = json.loads(a["config"])
        expect(cfg == {"optimizer": "adamw", "lr": 0.001, "batch": 32, "note": "synthetic \u00e9"}, "config %r" % cfg)
        expect(abs(int(a["created_unix"]) - time.time()) < 600, "created_unix %r" % a["created_unix"])
        text = ("format_version=%d\nstep=%d\nepoch=%d\nworld_size=%d\ncreated_unix=%d\nmodel_spec=%s\nconfig=%s" % (
            a["format_version"], a["step"], a["epoch"], a["world_size"], a["created_unix"], a["model_spec"],
            a["config"])).encode("utf-8")
        expect(int(a["meta_crc32c"]) == crc32c(text) and a["meta_crc32c"].dtype == np.dtype("<u4"),
               "meta_crc32c %r vs %08x" % (a["meta_crc32c"], crc32c(text)))
        expect(set(a.keys()) == {"format", "format_version", "step", "epoch", "model_spec", "config", "world_size",
                                 "created_unix", "meta_crc32c", "dataset_count"}, "root attributes %s" % sorted(a.keys()))
        expect(set(f.keys()) == {"params", "optimizer", "data", "rng"}, "groups %s" % sorted(f.keys()))

        seen = []
        f.visititems(lambda n, o: seen.append(n) if isinstance(o, h5py.Dataset) else None)
        expect(sorted(seen) == sorted(want), "datasets %s" % sorted(seen))
        for n, (dt, v) in want.items():
            ds = f[n]
            expect(ds.dtype == np.dtype(dt), "%s dtype %s" % (n, ds.dtype))
            expect(ds.shape == np.shape(v), "%s shape %s" % (n, ds.shape))
            expect(ds.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS, "%s not contiguous" % n)
            data = ds[()]
            expect(np.array_equal(data, v), "%s values" % n)
            expect(set(ds.attrs.keys()) == {"crc32c"} and ds.attrs["crc32c"].dtype == np.dtype("<u4"),
                   "%s attributes %s" % (n, list(ds.attrs.keys())))
            expect(int(ds.attrs["crc32c"]) == crc32c(np.asarray(data).tobytes()), "%s crc32c" % n)

    r = subprocess.run([ringtrain, "ckpt", "inspect", path], capture_output=True, text=True)
    expect(r.returncode == 0, "inspect rc %d: %s" % (r.returncode, r.stderr))
    expect("step=42" in r.stdout and "model_spec=\"mlp:8,16,3\"" in r.stdout, "inspect root attributes")
    for n in want:
        expect(("/" + n + " ") in r.stdout, "inspect lists %s" % n)
    expect("/params/fc1.weight f32[16,8] 512 B crc32c=0x" in r.stdout, "inspect dataset line:\n" + r.stdout)
    r = subprocess.run([ringtrain, "ckpt", "verify", path], capture_output=True, text=True)
    expect(r.returncode == 0 and "ok, step 42, 21 datasets" in r.stdout, "verify: %s %s" % (r.stdout, r.stderr))

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
