#!/usr/bin/python3
"""test_ckpt_direct_file.py - a checkpoint whose large arrays went to disk
with O_DIRECT (ckpt_direct.c) is the same file as one HDF5 wrote whole
through the page cache (RT_CKPT_TEST_NO_DIRECT=1, the oracle): same size,
same datasets at the same offsets, and every differing byte outside the
datasets' data (HDF5's object-header timestamps and the creation time of
the two writes). Rows of 4004 bytes and arrays of 18 MB, so the direct
writes start and end inside pages; h5py reads the values (closed form) and
the driver loads the file with its checksums."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

driver = sys.argv[1]
checker = rt_testlib.Checks(fail_tag="FAIL:")
expect, failures = checker.check, checker.failures

IN, HID, OUT, STEP = 1001, 4500, 7, 5
shape = ["--in", str(IN), "--hidden", str(HID), "--out", str(OUT)]


def write(d, env_extra):
    env = dict(os.environ)
    env.pop("RT_CKPT_TEST_NO_DIRECT", None)
    env.update(env_extra)
    r = subprocess.run([driver, "write", d, str(STEP)] + shape, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return os.path.join(d, "ckpt-%08d.h5" % STEP)


def layout(path):
    """Every dataset: (offset, stored bytes, dtype, shape, crc32c)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(n, o):
            if isinstance(o, h5py.Dataset):
                out[n] = (o.id.get_offset(), o.id.get_storage_size(), o.dtype.str, o.shape, int(o.attrs["crc32c"]))
        f.visititems(visit)
    return out


with tempfile.TemporaryDirectory(dir=".") as d:
    direct = write(os.path.join(d, "direct"), {})
    cached = write(os.path.join(d, "cached"), {"RT_CKPT_TEST_NO_DIRECT": "1"})
    a, b = open(direct, "rb").read(), open(cached, "rb").read()
    expect(len(a) == len(b), "sizes %d and %d" % (len(a), len(b)))

    la, lb = layout(direct), layout(cached)
    expect(la == lb, "datasets, offsets, sizes and checksums differ:\n%s\n%s" % (la, lb))
    big = [n for n, v in la.items() if v[1] >= 16 << 20]
    expect(len(big) == 3, "three arrays large enough for the direct path: %s" % big)

    if len(a) == len(b):
        x, y = np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)
        data = np.zeros(len(a), bool)
        for off, size, *_ in la.values():
            data[off:off + size] = True
        diff = x != y
        in_data = np.flatnonzero(diff & data)
        expect(len(in_data) == 0, "%d differing bytes inside dataset data, first at %s" % (len(in_data), in_data[:5]))
        expect(np.count_nonzero(diff) < 4096, "%d differing bytes (timestamps only expected)" % np.count_nonzero(diff))

    with h5py.File(direct, "r") as f:
        for j, g in enumerate(("params", "optimizer/m", "optimizer/v")):
            n = g + "/fc1.weight"
            k = np.arange(HID * IN)
            want = (k % 1000).astype(np.float32) * np.float32(0.001) + np.float32(STEP) + np.float32(0.25 * (4 * j))
            expect(np.array_equal(f[n][()].reshape(-1), want), "%s values (closed form)" % n)

    r = subprocess.run([driver, "load", direct] + shape, capture_output=True, text=True)
    expect(r.returncode == 0, "ckpt_driver load of the direct file: %s %s" % (r.stdout, r.stderr))

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
