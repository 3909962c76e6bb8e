"""test_import_text.py - `ringtrain data import-text`: the token stream is
the files' bytes concatenated in order (read back with h5py and compared
with Python's own read), the held-out split is the last round(total * X)
bytes, attributes follow docs/FORMATS.md; bad input exits 2 with no output."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def run(*args):
    return subprocess.run([RINGTRAIN, "data", "import-text", *args], capture_output=True, text=True)


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)
        a = "héllo wörld\n".encode() * 100
        b = bytes(range(256)) * 3
        with open(p("a.txt"), "wb") as f:
            f.write(a)
        with open(p("b.bin"), "wb") as f:
            f.write(b)
        whole = a + b
        r = run("--input", p("a.txt"), "--input", p("b.bin"), "--out", p("all.h5"))
        check(r.returncode == 0, f"import: {r.stderr}")
        with h5py.File(p("all.h5"), "r") as f:
            t = f["tokens"]
            check(t.dtype == np.uint8 and t.shape == (len(whole),), f"tokens {t.dtype} {t.shape}")
            check(bytes(t[...]) == whole, "tokens are the bytes in order")
            check(f.attrs["format"] == "ringtrain-dataset" and int(f.attrs["format_version"]) == 1,
                  "format attrs")
            check(f.attrs["kind"] == "tokens" and int(f.attrs["vocab_size"]) == 256, "kind/vocab")
            check(int(f.attrs["num_tokens"]) == len(whole), "num_tokens")
            check(t.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS, "contiguous")

        r = run("--input", p("a.txt"), "--input", p("b.bin"), "--out", p("tr.h5"),
                "--val-out", p("va.h5"), "--val-fraction", "0.1")
        check(r.returncode == 0, f"split import: {r.stderr}")
        nval = round(len(whole) * 0.1)
        with h5py.File(p("tr.h5"), "r") as f, h5py.File(p("va.h5"), "r") as g:
            check(bytes(f["tokens"][...]) == whole[:-nval], "train is the head")
            check(bytes(g["tokens"][...]) == whole[-nval:], "val is the tail")
        info = subprocess.run([RINGTRAIN, "data", "info", p("va.h5")], capture_output=True, text=True)
        check(info.returncode == 0 and f"token count: {nval}" in info.stdout
              and "vocab size: 256" in info.stdout and "kind: tokens" in info.stdout,
              f"info: {info.stdout}")

        def bad(args, culprit, word, outs):
            r = run(*args)
            msg = r.stderr.strip()
            check(r.returncode == 2, f"{args}: exit {r.returncode} {msg}")
            check(len(msg.splitlines()) == 1 and word in msg and (culprit is None or culprit in msg),
                  f"{args}: message {msg!r}")
            for o in outs:
                check(not os.path.exists(o), f"{args}: {o} left behind")
            check(not [x for x in os.listdir(tmp) if ".tmp." in x], "temporary files left")

        open(p("empty.txt"), "wb").close()
        bad(["--input", p("a.txt"), "--input", p("empty.txt"), "--out", p("x.h5")], "empty.txt",
            "empty", [p("x.h5")])
        bad(["--input", p("nope.txt"), "--out", p("x.h5")], "nope.txt", "No such file", [p("x.h5")])
        bad(["--input", p("a.txt"), "--out", p("x.h5"), "--val-fraction", "0.1"], None,
            "go together", [p("x.h5")])
        bad(["--input", p("a.txt"), "--out", p("x.h5"), "--val-out", p("v.h5"), "--val-fraction",
             "1.5"], None, "val-fraction", [p("x.h5"), p("v.h5")])
        bad(["--input", p("a.txt"), "--out", p("x.h5"), "--val-out", p("v.h5"), "--val-fraction",
             "0.0001"], None, "empty", [p("x.h5"), p("v.h5")])
        bad(["--input", p("a.txt"), "--out", p("x.h5"), "--val-out", p("nodir/v.h5"),
             "--val-fraction", "0.5"], "nodir/v.h5", "cannot create", [p("x.h5")])
        bad(["--input", tmp, "--out", p("x.h5")], tmp, "not a regular file", [p("x.h5")])
        bad(["--input", p("a.txt"), "--out", p("x.h5"), "--bogus", "1"], None, "unknown flag",
            [p("x.h5")])
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
