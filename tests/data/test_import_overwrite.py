"""test_import_overwrite.py - no importer writes over its own input: an
--out or --val-out that names the same file as an input (the same path, the
same file spelled another way, a symlink or a hard link to it) or as the
other output is refused with exit 2 and one line naming both, the input is
left byte for byte as it was, and no output or temporary file is created.
import-idx (--images, --labels), import-text and import-tokens (--input,
several inputs, --val-out) are each checked; an import next to its inputs
under other names still works."""
import gzip
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import idx_bytes, write_bytes  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check = checker.check


def run(sub, *args):
    return subprocess.run([RINGTRAIN, "data", sub, *args], capture_output=True, text=True,
                          timeout=60)


def snapshot(paths):
    out = {}
    for p in paths:
        with open(p, "rb") as f:
            out[p] = f.read()
    return out


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)
        os.mkdir(p("sub"))
        text = write_bytes(p("t.txt"), b"the quick brown fox\n" * 50)
        text2 = write_bytes(p("u.txt"), b"jumps over the lazy dog\n" * 40)
        toks = write_bytes(p("t.bin"), struct.pack("<1000H", *(i % 97 for i in range(1000))))
        imgs = write_bytes(p("img.gz"), idx_bytes((6, 4, 4), bytes(range(96))), gz=True)
        labs = write_bytes(p("lab.gz"), idx_bytes((6,), bytes([0, 1, 2, 0, 1, 2])), gz=True)
        os.symlink("t.txt", p("t-link.h5"))       # a symlink to an input
        os.link(text, p("t-hard.h5"))             # a hard link to an input
        os.symlink("img.gz", p("img-link.h5"))
        os.symlink("t.bin", p("t-bin-link.h5"))
        inputs = [text, text2, toks, imgs, labs]
        before = snapshot(inputs)

        def refused(sub, args, words):
            r = run(sub, *args)
            msg = r.stderr.strip()
            what = f"{sub} {[a.replace(tmp + os.sep, '') for a in args]}"
            check(r.returncode == 2, f"{what}: exit {r.returncode} (want 2) {msg!r}")
            check(len(msg.splitlines()) == 1 and msg.startswith(f"ringtrain data {sub}: "),
                  f"{what}: one line, got {msg!r}")
            for w in words:
                check(w in msg, f"{what}: {w!r} not in {msg!r}")
            for path, data in before.items():
                with open(path, "rb") as f:
                    check(f.read() == data, f"{what}: input {os.path.basename(path)} changed")
            left = [x for x in os.listdir(tmp) if ".tmp." in x]
            check(not left, f"{what}: temporary files left: {left}")
            for o in ("x.h5", "v.h5"):
                check(not os.path.exists(p(o)), f"{what}: {o} created")

        # import-text
        refused("import-text", ["--input", text, "--out", text], ["--out", "--input", "t.txt"])
        refused("import-text", ["--input", text, "--out", p("sub/../t.txt")], ["t.txt"])
        refused("import-text", ["--input", text, "--out", p("t-link.h5")], ["t-link.h5"])
        refused("import-text", ["--input", text, "--out", p("t-hard.h5")], ["t-hard.h5"])
        refused("import-text", ["--input", p("t-link.h5"), "--out", text], ["t.txt"])
        refused("import-text", ["--input", text, "--input", text2, "--out", text2], ["u.txt"])
        refused("import-text", ["--input", text, "--out", p("x.h5"), "--val-out", text,
                                "--val-fraction", "0.1"], ["--val-out", "t.txt"])
        refused("import-text", ["--input", text, "--out", p("x.h5"), "--val-out",
                                p("sub/../x.h5"), "--val-fraction", "0.1"], ["same file"])
        # relative paths, as typed in the input's own directory
        r = subprocess.run([RINGTRAIN, "data", "import-text", "--input", "t.txt", "--out",
                            "./t.txt"], cwd=tmp, capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "same file" in r.stderr,
              f"import-text relative ./t.txt: exit {r.returncode} {r.stderr.strip()!r}")

        # import-idx
        refused("import-idx", ["--images", imgs, "--labels", labs, "--out", imgs],
                ["--out", "--images", "img.gz"])
        refused("import-idx", ["--images", imgs, "--labels", labs, "--out", labs],
                ["--labels", "lab.gz"])
        refused("import-idx", ["--images", imgs, "--labels", labs, "--out", p("img-link.h5")],
                ["img-link.h5"])

        # import-tokens
        tok = ["--format", "bin", "--vocab", "97"]
        refused("import-tokens", ["--input", toks, *tok, "--out", toks], ["t.bin"])
        refused("import-tokens", ["--input", toks, *tok, "--out", p("t-bin-link.h5")],
                ["t-bin-link.h5"])
        refused("import-tokens", ["--input", toks, *tok, "--out", p("x.h5"), "--val-out", toks,
                                  "--val-fraction", "0.1"], ["--val-out", "t.bin"])

        # other names next to the inputs still import
        r = run("import-text", "--input", text, "--out", p("t.h5"))
        check(r.returncode == 0, f"import-text to another name: {r.stderr.strip()}")
        r = run("import-idx", "--images", imgs, "--labels", labs, "--out", p("i.h5"))
        check(r.returncode == 0, f"import-idx to another name: {r.stderr.strip()}")
        r = run("import-tokens", "--input", toks, *tok, "--out", p("k.h5"), "--val-out",
                p("kv.h5"), "--val-fraction", "0.1")
        check(r.returncode == 0, f"import-tokens to other names: {r.stderr.strip()}")
        try:
            with gzip.open(imgs) as f:
                check(len(f.read()) == 16 + 96, "the IDX input is still its gzip stream")
        except OSError as e:
            check(False, f"the IDX input is no longer a gzip stream: {e}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
