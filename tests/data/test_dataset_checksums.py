"""test_dataset_checksums.py - dataset files carry CRC-32C checksums and a
flipped byte is caught:

- the importers store attribute `crc32c` on /inputs, /labels and /tokens
  and a 1 MiB block table for /inputs and /tokens (/crc32c_blocks/<name>,
  attribute block_bytes); the values equal an independent pure-Python
  CRC-32C (tests/ckpt/crc32c_ref.py) of the bytes h5py reads;
- one byte flipped in the file inside /inputs, /labels or /tokens:
  `ringtrain train` stops before its first step (exit 1, no step line, one
  message naming the array); `ringtrain data verify` exits 1 naming every
  bad array, `data info` exits 1; an intact file verifies (exit 0);
- files without checksums (older ringtrain, or h5py) still train and
  verify, with a one-line note; `data verify` usage errors exit 2.
The block-by-block checks of files read by offset are in test_loader."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "ckpt"))
import rt_testlib  # noqa: E402
from crc32c_ref import crc32c  # noqa: E402
from rt_testlib import idx_bytes, write_bytes  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks(show_ok=True)
check = checker.check
BLOCK = 1 << 20


def rt(*args, timeout=120):
    return subprocess.run([RINGTRAIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def message_lines(stderr):
    """stderr without the ranks' log lines ("[r0/1 host] file:line INFO: ...")."""
    return [l for l in stderr.strip().splitlines() if l and not l.startswith("[r")]


def flip(path, array, at):
    """Flips the bits of byte `at` of /array, in the file itself."""
    with h5py.File(path, "r") as f:
        off = f[array].id.get_offset()
    with open(path, "r+b") as g:
        g.seek(off + at)
        b = g.read(1)
        g.seek(off + at)
        g.write(bytes([b[0] ^ 0xFF]))


def copy(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    return dst


def check_stored(path, arrays, blocked):
    with h5py.File(path, "r") as f:
        for a in arrays:
            raw = f[a][...].astype(f[a].dtype.newbyteorder("<")).tobytes()
            want = crc32c(raw)
            check(int(f[a].attrs.get("crc32c", -1)) == want,
                  f"{os.path.basename(path)} /{a}: crc32c attribute 0x{want:08x}")
            if a in blocked and check(f"crc32c_blocks/{a}" in f,
                                      f"{os.path.basename(path)}: /crc32c_blocks/{a} stored"):
                t = f[f"crc32c_blocks/{a}"]
                blocks = [crc32c(raw[i:i + BLOCK]) for i in range(0, len(raw), BLOCK)]
                check(int(t.attrs["block_bytes"]) == BLOCK and list(t[...]) == blocks
                      and t.dtype == np.dtype("<u4"),
                      f"{os.path.basename(path)} /{a}: {len(blocks)} block checksums")


def refused_train(what, args, array):
    r = rt("train", *args)
    lines = message_lines(r.stderr)
    check(r.returncode == 1, f"train on {what}: exit {r.returncode} (want 1) {lines}")
    check(len(lines) == 1 and array in lines[0] and "checksum" in lines[0],
          f"train on {what}: one line naming {array}, got {lines}")
    check(" step " not in r.stdout and "done" not in r.stdout,
          f"train on {what}: no step ran (stdout {r.stdout.strip()[:200]!r})")


def verify_bad(path, arrays, n_arrays):
    r = rt("data", "verify", path)
    msg = r.stderr.strip()
    check(r.returncode == 1 and len(msg.splitlines()) == 1
          and f"{len(arrays)} of {n_arrays} arrays corrupt" in msg
          and all(a in msg for a in arrays) and "crc32c stored" in msg,
          f"verify {os.path.basename(path)}: exit {r.returncode} (want 1) naming {arrays}: "
          f"{msg!r}")
    r = rt("data", "info", path)
    check(r.returncode == 1 and any(a in r.stderr for a in arrays) and "checksum" in r.stderr,
          f"info {os.path.basename(path)}: exit {r.returncode} (want 1) {r.stderr.strip()!r}")


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)
        rng = np.random.default_rng(3)
        n = 1500  # 1.18 MB of inputs: two blocks
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        imgs = write_bytes(p("img.gz"), idx_bytes((n, 28, 28), x.tobytes()), gz=True)
        labs = write_bytes(p("lab.gz"), idx_bytes((n,), y.tobytes()), gz=True)
        good = p("good.h5")
        r = rt("data", "import-idx", "--images", imgs, "--labels", labs, "--out", good)
        check(r.returncode == 0, f"import-idx: {r.stderr.strip()}")
        check_stored(good, ["inputs", "labels"], ["inputs"])
        text = write_bytes(p("t.txt"), bytes(rng.integers(32, 127, 3 << 19, dtype=np.uint8)))
        tok = p("tok.h5")
        r = rt("data", "import-text", "--input", text, "--out", tok)
        check(r.returncode == 0, f"import-text: {r.stderr.strip()}")
        check_stored(tok, ["tokens"], ["tokens"])
        bins = write_bytes(p("t.bin"), rng.integers(0, 1000, 5000, dtype="<u2").tobytes())
        tok16 = p("tok16.h5")
        r = rt("data", "import-tokens", "--input", bins, "--format", "bin", "--vocab", 1000,
               "--out", tok16)
        check(r.returncode == 0, f"import-tokens: {r.stderr.strip()}")
        check_stored(tok16, ["tokens"], ["tokens"])

        for path, arrays in ((good, 2), (tok, 1), (tok16, 1)):
            r = rt("data", "verify", path)
            check(r.returncode == 0 and f"ok, {arrays} arrays" in r.stdout and not r.stderr,
                  f"verify intact {os.path.basename(path)}: exit {r.returncode} "
                  f"{r.stdout.strip()!r} {r.stderr.strip()!r}")
        r = rt("data", "info", good)
        check(r.returncode == 0 and "checksums: crc32c, checked" in r.stdout,
              f"info reports the checksums: {r.stdout.strip()[-80:]!r}")

        mlp = ["--model", "mlp:784,16,10", "--batch", 16, "--steps", 2, "--device", "cpu",
               "--threads", 1, "--log-every", 1]
        r = rt("train", "--data", good, *mlp)
        check(r.returncode == 0 and "note" not in r.stderr,
              f"train on the intact file: exit {r.returncode} {r.stderr.strip()[-200:]}")

        # a byte flipped in each array
        bad_in = copy(good, p("bad-inputs.h5"))
        flip(bad_in, "inputs", n * 784 - 3)  # in the last block
        refused_train("a flipped /inputs byte", ["--data", bad_in, *mlp], "/inputs")
        refused_train("a flipped /inputs byte in --eval",
                      ["--data", good, "--eval", bad_in, *mlp], "/inputs")
        verify_bad(bad_in, ["/inputs"], 2)
        bad_lab = copy(good, p("bad-labels.h5"))
        flip(bad_lab, "labels", 7)  # a label of 248..255: the checksum speaks first
        refused_train("a flipped /labels byte", ["--data", bad_lab, *mlp], "/labels")
        verify_bad(bad_lab, ["/labels"], 2)
        both = copy(bad_in, p("bad-both.h5"))
        flip(both, "labels", 7)
        verify_bad(both, ["/inputs", "/labels"], 2)
        r = rt("data", "verify", both)
        check("2 of 2 blocks" not in r.stderr and "1 of 2 blocks" in r.stderr
              and "first block 1" in r.stderr,
              f"verify names the bad block of /inputs: {r.stderr.strip()!r}")
        bad_tok = copy(tok, p("bad-tokens.h5"))
        flip(bad_tok, "tokens", 1000)
        gpt = ["--model", "gpt:layers=1,dim=16,heads=2,ctx=8", "--batch", 2, "--steps", 2,
               "--device", "cpu", "--threads", 1, "--log-every", 1]
        r = rt("train", "--data", tok, *gpt)
        check(r.returncode == 0, f"gpt on the intact tokens: exit {r.returncode} "
              f"{r.stderr.strip()[-200:]}")
        refused_train("a flipped /tokens byte", ["--data", bad_tok, *gpt], "/tokens")
        verify_bad(bad_tok, ["/tokens"], 1)
        bad_tok16 = copy(tok16, p("bad-tokens16.h5"))
        flip(bad_tok16, "tokens", 2 * 4000)  # low byte of token 4000: may stay < vocab
        verify_bad(bad_tok16, ["/tokens"], 1)

        # files without checksums: h5py-written, as every file before them
        old = rt_testlib.write_dataset(p("old.h5"), x.reshape(n, 784), y, 10)
        r = rt("train", "--data", old, *mlp)
        notes = [l for l in r.stderr.splitlines() if "note:" in l]
        check(r.returncode == 0 and len(notes) == 1 and "no checksums" in notes[0]
              and "/inputs, /labels" in notes[0] and "old.h5" in notes[0],
              f"train on a file without checksums: exit {r.returncode}, one note: {notes}")
        r = rt("data", "verify", old)
        check(r.returncode == 0 and "no checksums for /inputs, /labels" in r.stdout
              and len(r.stderr.strip().splitlines()) == 1 and "note:" in r.stderr,
              f"verify without checksums: exit {r.returncode} {r.stdout.strip()!r} "
              f"{r.stderr.strip()!r}")
        r = rt("data", "info", old)
        check(r.returncode == 0 and "checksums: none for /inputs, /labels" in r.stdout,
              f"info without checksums: {r.returncode} {r.stdout.strip()[-80:]!r}")
        # with a checksum computed outside ringtrain (h5py + Python), it is checked
        with h5py.File(old, "a") as f:
            f["inputs"].attrs["crc32c"] = np.uint32(crc32c(f["inputs"][...].tobytes()))
            f["labels"].attrs["crc32c"] = np.uint32(crc32c(f["labels"][...].tobytes()) ^ 1)
        r = rt("data", "verify", old)
        check(r.returncode == 1 and "1 of 2 arrays corrupt: /labels" in r.stderr,
              f"h5py-written checksums are checked: {r.returncode} {r.stderr.strip()!r}")

        for args, code in ((["data", "verify"], 2), (["data", "verify", good, good], 2),
                           (["data", "verify", p("absent.h5")], 2),
                           (["data", "verify", text], 2), (["data", "verify", "--help"], 0)):
            r = rt(*args)
            check(r.returncode == code, f"{args[1:]}: exit {r.returncode}, want {code}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
