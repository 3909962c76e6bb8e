"""test_train_resources.py - `ringtrain train` out of memory and with too
many threads:

- `--threads` beyond 1024 (100000, 1025) is a usage error in train, eval
  and sample: exit 2, one line naming --threads;
- under an address-space limit (prlimit --as, 2 GiB) `--threads 16` (16 x
  OpenBLAS's 128 MiB buffer do not fit) ends within 10 s with exit 1 and
  one line saying so; before the fix OpenBLAS's threads retried their
  buffer forever and the process never ended;
- under the same limit `--threads 2` trains;
- a dataset too large for the address space left ("cannot allocate") is a
  runtime failure, exit 1 within 10 s, not a usage error (exit 2, which the
  launcher does not retry).
The limits need util-linux's prlimit and a build without AddressSanitizer
(which maps terabytes of shadow memory); without them those parts are
skipped, and the whole test exits 77 when nothing else was checked."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks(show_ok=True)
check = checker.check
AS_LIMIT = 2 << 30


def run(cmd, limit=None, timeout=60):
    """(exit code or None when killed at the timeout, stderr, seconds)."""
    if limit:
        cmd = ["prlimit", f"--as={limit}", "--"] + cmd
    t0 = time.monotonic()
    try:
        # subprocess kills with SIGKILL at the timeout: train ignores SIGTERM
        # until its next step, which a hung process never reaches
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, err, time.monotonic() - t0


def message_lines(stderr):
    """stderr without the ranks' log lines ("[r0/1 host] file:line INFO: ...")."""
    return [l for l in stderr.strip().splitlines() if l and not l.startswith("[r")]


def sanitized():
    """True when the binary carries AddressSanitizer."""
    with open(RINGTRAIN, "rb") as f:
        return b"__asan_init" in f.read()


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)
        rng = np.random.default_rng(0)
        x, _, y = rt_testlib.learnable_data(rng, 512, 784, 10)
        data = rt_testlib.write_dataset(p("d.h5"), x, y, 10)
        train = [RINGTRAIN, "train", "--model", "mlp:784,16,10", "--data", data, "--batch", "8",
                 "--steps", "3", "--device", "cpu", "--log-every", "1"]

        for n in ("100000", "1025"):
            for cmd in (train + ["--threads", n],
                        [RINGTRAIN, "eval", "--ckpt", p("none.h5"), "--data", data,
                         "--threads", n],
                        [RINGTRAIN, "sample", "--ckpt", p("none.h5"), "--prompt", "a",
                         "--threads", n]):
                code, err, _ = run(cmd)
                lines = message_lines(err)
                check(code == 2 and len(lines) == 1 and "--threads" in lines[0]
                      and "1024" in lines[0],
                      f"{cmd[1]} --threads {n}: exit {code} (want 2), {lines}")

        if not shutil.which("prlimit"):
            print("SKIP the address-space cases: no prlimit (util-linux)")
        elif sanitized():
            print("SKIP the address-space cases: AddressSanitizer needs an unlimited address space")
        else:
            code, err, secs = run(train + ["--threads", "16"], AS_LIMIT, timeout=20)
            lines = message_lines(err)
            check(code == 1 and secs < 10,
                  f"--threads 16 under a 2 GiB address space: exit {code} (want 1; None: "
                  f"killed after {secs:.0f} s, hung) in {secs:.1f} s (want < 10)")
            check(len(lines) == 1 and lines[0].startswith("ringtrain train: ")
                  and "16 CPU threads" in lines[0] and "address" in lines[0],
                  f"--threads 16 under a 2 GiB address space: one line, got {lines}")

            code, err, secs = run(train + ["--threads", "2"], AS_LIMIT, timeout=60)
            check(code == 0, f"--threads 2 under a 2 GiB address space trains: exit {code} "
                  f"{err.strip()[-300:]}")

            # 1 GiB of uint8 inputs, declared but never written (h5py leaves
            # the storage unallocated, so the file is small and reads as 0)
            import h5py
            big = p("big.h5")
            n_big = (1 << 30) // 784
            with h5py.File(big, "w") as f:
                f.attrs["format"] = "ringtrain-dataset"
                f.attrs["format_version"] = 1
                f.attrs["kind"] = "classification"
                f.attrs["num_classes"] = 10
                f.create_dataset("inputs", shape=(n_big, 784), dtype=np.uint8)
                f["labels"] = np.zeros(n_big, np.uint8)
            cmd = [a if a != data else big for a in train] + ["--threads", "1"]
            code, err, secs = run(cmd, AS_LIMIT // 2, timeout=20)
            lines = message_lines(err)
            check(code == 1 and secs < 10,
                  f"a dataset larger than the address space: exit {code} (want 1, a runtime "
                  f"failure) in {secs:.1f} s")
            check(len(lines) == 1 and "cannot allocate" in lines[0] and "big.h5" in lines[0],
                  f"a dataset larger than the address space: one line naming it, got {lines}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
