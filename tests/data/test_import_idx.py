"""test_import_idx.py - `ringtrain data import-idx` on Fashion-MNIST against
an independent reader (Python's gzip and struct): record counts, the first
and last images and labels, the label histogram; h5py reads the file with
the layout docs/FORMATS.md documents; `data info` prints the same histogram;
a plain (not gzip'ed) IDX pair imports to the same data.
Skips (77) when the Debian dataset-fashion-mnist files are absent."""
import collections
import gzip
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

SRC = "/usr/share/datasets/fashion-mnist"
RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def read_idx(path):
    """The oracle: IDX parsed with struct, independent of ringtrain."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    size = 1
    for d in dims:
        size *= d
    assert len(body) == size
    return dims, body


def run(*args):
    return subprocess.run([RINGTRAIN, "data", *args], capture_output=True, text=True)


def check_split(tmp, prefix, want_n):
    images = f"{SRC}/{prefix}-images-idx3-ubyte.gz"
    labels = f"{SRC}/{prefix}-labels-idx1-ubyte.gz"
    out = os.path.join(tmp, f"{prefix}.h5")
    r = run("import-idx", "--images", images, "--labels", labels, "--out", out)
    check(r.returncode == 0, f"{prefix}: import exit {r.returncode}: {r.stderr}")
    idims, ibody = read_idx(images)
    ldims, lbody = read_idx(labels)
    n = idims[0]
    check(n == want_n and ldims[0] == want_n, f"{prefix}: oracle count {n}")
    rec = idims[1] * idims[2]
    hist = collections.Counter(lbody)
    with h5py.File(out, "r") as f:
        a = f.attrs
        check(a["format"] == "ringtrain-dataset", f"format attr {a['format']!r}")
        check(int(a["format_version"]) == 1, "format_version")
        check(a["kind"] == "classification", "kind")
        check(int(a["num_classes"]) == 10, "num_classes")
        check(int(a["num_records"]) == want_n, "num_records")
        check(list(a["input_shape"]) == [28, 28], "input_shape")
        x, y = f["inputs"], f["labels"]
        check(x.shape == (want_n, 28, 28) and x.dtype == np.uint8, f"inputs {x.shape} {x.dtype}")
        check(y.shape == (want_n,) and y.dtype == np.uint8, f"labels {y.shape} {y.dtype}")
        for name in ("inputs", "labels"):
            plist = f[name].id.get_create_plist()
            check(plist.get_layout() == h5py.h5d.CONTIGUOUS, f"{name} contiguous")
            check(plist.get_nfilters() == 0, f"{name} unfiltered")
        first = np.frombuffer(ibody[:rec], np.uint8).reshape(28, 28)
        last = np.frombuffer(ibody[(n - 1) * rec:], np.uint8).reshape(28, 28)
        check(np.array_equal(x[0], first), f"{prefix}: first image")
        check(np.array_equal(x[n - 1], last), f"{prefix}: last image")
        check(int(y[0]) == lbody[0] and int(y[n - 1]) == lbody[n - 1], "first/last label")
        allx = x[...]
        check(np.array_equal(allx.reshape(-1), np.frombuffer(ibody, np.uint8)), "all images")
        yy = y[...]
        check(dict(collections.Counter(yy.tolist())) == dict(hist), f"{prefix}: histogram")
    info = run("info", out)
    check(info.returncode == 0, f"info exit {info.returncode} {info.stderr}")
    want_line = "class histogram: " + " ".join(f"{c}:{hist[c]}" for c in range(10))
    check(want_line in info.stdout, f"info histogram line: {info.stdout!r}")
    check(f"records: {want_n}" in info.stdout, "info records")
    check(f"inputs: uint8 [{want_n}, 28, 28]" in info.stdout, "info inputs shape")
    check(not [p for p in os.listdir(tmp) if ".tmp." in p], "no temporary files left")
    return out, ibody, lbody


def main():
    if not os.path.exists(f"{SRC}/t10k-images-idx3-ubyte.gz"):
        print("Fashion-MNIST not installed; skipping")
        return 77
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        check_split(tmp, "train", 60000)
        test_out, ibody, lbody = check_split(tmp, "t10k", 10000)
        # the same pair, not gzip'ed: zlib reads plain files as they are
        for name, body in (("img", ibody), ("lab", lbody)):
            src = f"{SRC}/t10k-{'images-idx3' if name == 'img' else 'labels-idx1'}-ubyte.gz"
            with gzip.open(src, "rb") as f, open(os.path.join(tmp, name), "wb") as g:
                g.write(f.read())
        plain = os.path.join(tmp, "plain.h5")
        r = run("import-idx", "--images", os.path.join(tmp, "img"), "--labels",
                os.path.join(tmp, "lab"), "--out", plain)
        check(r.returncode == 0, f"plain import: {r.stderr}")
        with h5py.File(plain, "r") as a, h5py.File(test_out, "r") as b:
            check(np.array_equal(a["inputs"][...], b["inputs"][...]), "plain == gzip inputs")
            check(np.array_equal(a["labels"][...], b["labels"][...]), "plain == gzip labels")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
