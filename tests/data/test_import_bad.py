"""test_import_bad.py - bad input to `ringtrain data`: every case exits 2
with one line naming the file and the problem, and leaves no output (nor a
temporary file) behind. Corrupt files are made here with gzip/struct/h5py;
a valid h5py-written file (float32 inputs, int32 labels, fixed-length string
attributes) is the positive control showing the documented layout suffices.
A label outside [0, num_classes) is named with its value as stored, also
beyond int32 (2^40 in int64 labels, 2^63 + 5 in uint64 ones)."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import idx_bytes, write_bytes as write  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def expect_bad(tmp, args, culprit, words, out=None):
    r = subprocess.run([RINGTRAIN, "data", *args], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    what = f"{args[0]} {os.path.basename(culprit)} {words}"
    check(r.returncode == 2, f"{what}: exit {r.returncode} (stderr {r.stderr!r})")
    check(len(lines) == 1, f"{what}: one line, got {lines}")
    msg = lines[0] if lines else ""
    check(os.path.basename(culprit) in msg, f"{what}: file not named in {msg!r}")
    for w in words:
        check(w in msg, f"{what}: '{w}' not in {msg!r}")
    if out:
        check(not os.path.exists(out), f"{what}: output left behind")
    left = [p for p in os.listdir(tmp) if ".tmp." in p]
    check(not left, f"{what}: temporary files left: {left}")


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)
        n, h, w = 5, 2, 3
        imgs = bytes(range(n * h * w))
        labs = bytes([0, 1, 2, 1, 0])
        good_i = write(p("good-images.gz"), idx_bytes([n, h, w], imgs), gz=True)
        good_l = write(p("good-labels.gz"), idx_bytes([n], labs), gz=True)
        out = p("out.h5")

        # positive control
        r = subprocess.run([RINGTRAIN, "data", "import-idx", "--images", good_i, "--labels", good_l,
                            "--out", out], capture_output=True, text=True)
        check(r.returncode == 0 and os.path.exists(out), f"good import: {r.stderr}")
        os.remove(out)

        def imp(images, labels, culprit, *words):
            expect_bad(tmp, ["import-idx", "--images", images, "--labels", labels, "--out", out],
                       culprit, list(words), out)

        whole = open(good_i, "rb").read()
        big = write(p("big-images.gz"), idx_bytes([200, 28, 28], os.urandom(200 * 784)), gz=True)
        big_l = write(p("big-labels.gz"), idx_bytes([200], bytes(200)), gz=True)
        cut = write(p("cut-images.gz"), open(big, "rb").read()[: os.path.getsize(big) // 2])
        imp(cut, big_l, cut, "truncated")
        notrailer = write(p("notrailer-images.gz"), whole[:-6])
        imp(notrailer, good_l, notrailer, "truncated")
        garbage = bytearray(open(big, "rb").read())
        garbage[40:60] = b"\xff" * 20
        garbled = write(p("garbled-images.gz"), bytes(garbage))
        imp(garbled, big_l, garbled)
        magic = write(p("magic-images"), b"\x12\x34\x56\x78" + imgs)
        imp(magic, good_l, magic, "magic")
        floats = write(p("float-images"), idx_bytes([n, h, w], bytes(4 * n * h * w), dtype=0x0D))
        imp(floats, good_l, floats, "type")
        imp(good_l, good_l, good_l, "magic", "dimensions")  # labels given as images
        more = write(p("six-labels.gz"), idx_bytes([6], labs + b"\x01"), gz=True)
        imp(good_i, more, more, "5 images", "6 labels")
        empty = write(p("empty-images"), b"")
        imp(empty, good_l, empty, "empty")
        imp(p("missing-images.gz"), good_l, p("missing-images.gz"), "No such file")
        short = write(p("short-images"), idx_bytes([n, h, w], imgs[:-1]))
        imp(short, good_l, short, "truncated")
        trailing = write(p("trailing-labels"), idx_bytes([n], labs + b"\x00"))
        imp(good_i, trailing, trailing, "trailing")
        zero_dim = write(p("zerodim-images"), idx_bytes([0, h, w], b""))
        imp(zero_dim, good_l, zero_dim, "dimension")
        expect_bad(tmp, ["import-idx", "--images", good_i, "--labels", good_l, "--out",
                         p("nodir/out.h5")], p("nodir/out.h5"), ["cannot create"], None)
        check(not os.path.exists(p("nodir")), "no directory created")

        # HDF5 files that are not ringtrain datasets of a version we read
        def h5(name, attrs, datasets):
            path = p(name)
            with h5py.File(path, "w") as f:
                for k, v in attrs.items():
                    f.attrs[k] = v
                for k, v in datasets.items():
                    f[k] = v
            return path

        x = np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3)
        y = np.array([0, 2, 1, 2], dtype=np.int32)
        base = {"format": "ringtrain-dataset", "format_version": 1, "kind": "classification",
                "num_classes": 3}
        good = h5("good.h5", {**base, "format": np.bytes_(b"ringtrain-dataset"),
                              "kind": np.bytes_(b"classification")},
                  {"inputs": x, "labels": y})
        r = subprocess.run([RINGTRAIN, "data", "info", good], capture_output=True, text=True)
        check(r.returncode == 0, f"h5py-written dataset: {r.stderr}")
        check("inputs: float32 [4, 2, 3]" in r.stdout and "labels: int32 [4]" in r.stdout
              and "class histogram: 0:1 1:1 2:2" in r.stdout, f"info of h5py file: {r.stdout}")
        toks = h5("tokens.h5", {"format": "ringtrain-dataset", "format_version": 1,
                                "kind": "tokens", "vocab_size": 300},
                  {"tokens": np.array([1, 299, 7], dtype=np.uint16)})
        r = subprocess.run([RINGTRAIN, "data", "info", toks], capture_output=True, text=True)
        check(r.returncode == 0 and "token count: 3" in r.stdout and "vocab size: 300" in r.stdout,
              f"tokens info: {r.stdout} {r.stderr}")

        def info(path, *words):
            expect_bad(tmp, ["info", path], path, list(words))

        info(h5("ckpt.h5", {**base, "format": "ringtrain-checkpoint"}, {"inputs": x, "labels": y}),
             "not a ringtrain dataset", "ringtrain-checkpoint")
        info(h5("newer.h5", {**base, "format_version": 2}, {"inputs": x, "labels": y}),
             "format_version 2", "newer")
        info(h5("images.h5", {**base, "kind": "images"}, {"inputs": x, "labels": y}), "kind 'images'")
        info(h5("noattrs.h5", {}, {"inputs": x, "labels": y}), "not a ringtrain dataset")
        info(h5("nolabels.h5", base, {"inputs": x}), "missing dataset /labels")
        info(h5("badlabel.h5", base, {"inputs": x, "labels": np.array([0, 3, 1, 1], np.int32)}),
             "label 3", "outside")
        # a label beyond int32 is named with its own value, not a clamped one
        for name, lab, value in (("i64", np.array([0, 2**40, 1, 1], np.int64), "1099511627776"),
                                 ("i64neg", np.array([0, 1, -2**40, 1], np.int64),
                                  "-1099511627776"),
                                 ("i64wrap", np.array([0, 1, 1, 2**32 + 1], np.int64),
                                  "4294967297"),
                                 ("u64", np.array([2**63 + 5, 0, 1, 1], np.uint64),
                                  "9223372036854775813"),
                                 ("u32", np.array([0, 1, 2**31, 1], np.uint32), "2147483648")):
            record = int(np.flatnonzero((lab < 0) | (lab >= 3))[0])
            info(h5(f"label-{name}.h5", base, {"inputs": x, "labels": lab}),
                 f"label {value} of record {record} is outside [0, 3)")
        # labels are checked piece by piece: a bad one far into a long file
        many = np.arange(200000, dtype=np.int64) % 3
        many[150001] = 2**40 + 7
        info(h5("label-far.h5", base, {"inputs": np.zeros((200000, 1), np.uint8),
                                       "labels": many}),
             "label 1099511627783 of record 150001 is outside")
        many[150001] = 2
        r = subprocess.run([RINGTRAIN, "data", "info",
                            h5("far-ok.h5", base, {"inputs": np.zeros((200000, 1), np.uint8),
                                                   "labels": many})],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "class histogram: 0:66667 1:66666 2:66667" in r.stdout,
              f"200000 int64 labels load: {r.stdout} {r.stderr}")
        r = subprocess.run([RINGTRAIN, "data", "info",
                            h5("i64ok.h5", base, {"inputs": x, "labels": y.astype(np.int64)})],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "labels: int64 [4]" in r.stdout
              and "class histogram: 0:1 1:1 2:2" in r.stdout, f"int64 labels load: {r.stdout}")
        info(h5("mismatch.h5", base, {"inputs": x, "labels": y[:3]}), "/labels")
        info(h5("bigtoken.h5", {"format": "ringtrain-dataset", "format_version": 1,
                                "kind": "tokens", "vocab_size": 10},
                {"tokens": np.array([1, 10], dtype=np.uint16)}), "token 10")
        info(write(p("cut.h5"), open(good, "rb").read()[: os.path.getsize(good) // 2]),
             "cannot open as HDF5")
        info(write(p("text.h5"), b"hello, not hdf5\n"), "not an HDF5 file")
        info(write(p("zero.h5"), b""), "empty")
        info(p("absent.h5"), "No such file")
    # the command line itself: usage errors exit 2, --help exits 0
    for args, code in ((["data"], 2), (["data", "frob"], 2), (["data", "info"], 2),
                       (["data", "info", "a.h5", "b.h5"], 2),
                       (["data", "import-idx", "--images", "x"], 2),
                       (["data", "import-idx", "--help"], 0), (["data", "--help"], 0)):
        r = subprocess.run([RINGTRAIN, *args], capture_output=True, text=True)
        check(r.returncode == code, f"{args}: exit {r.returncode}, want {code}")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
