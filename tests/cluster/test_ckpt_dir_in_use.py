#!/usr/bin/env python3
"""test_ckpt_dir_in_use.py - two jobs, one checkpoint directory: while job A
(`ringtrain launch -np 2 -- train --ckpt-dir D`) runs, job B with the same D
is refused (exit 2, not retried by the launcher even with --max-restarts)
with a message naming A's lock holder (pid and host from D/.lock), and A is
unharmed; after A is stopped (SIGTERM to its launcher) the directory is free
for B. Skipped (77) until `ringtrain train` has
--ckpt-dir/--ckpt-every/--resume and calls ckpt_dir_lock (cluster/ckpt_lock.h)."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402


def main():
    e.require_train_flags("--ckpt-dir", "--ckpt-every", "--resume", "--threads")
    e.require_hook("is in use by")  # ckpt_dir_lock's message: linked only when the trainer calls it
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        spec = e.write_dataset(p("train.h5"))
        ck = p("ck")
        base = ["-np", 2, "--oversubscribe", "--grace", 1, "--"]
        train = ["train", "--model", spec, "--data", p("train.h5"), "--batch", 16,
                 "--threads", 1, "--ckpt-dir", ck, "--ckpt-every", 50, "--log-every", 1000]
        a_log = open(p("a.log"), "w")
        a = subprocess.Popen([e.RINGTRAIN, "launch", *map(str, base), *map(str, train),
                              "--steps", "100000000"], stdout=a_log, stderr=a_log)
        lock = os.path.join(ck, ".lock")
        holder = ""
        for _ in range(600):
            if os.path.exists(lock):
                with open(lock) as f:
                    holder = f.read().strip()
                if holder:
                    break
            time.sleep(0.1)
        e.check(bool(re.match(r"pid \d+ on host \S+", holder)), f"job A holds {lock}: '{holder}'")
        mode = os.stat(lock).st_mode & 0o777 if os.path.exists(lock) else 0
        e.check(mode and not mode & 0o002, f"lock file not world-writable ({oct(mode)})")

        t0 = time.monotonic()
        b = e.Run([*base[:-1], "--max-restarts", 2, "--", *train, "--steps", 20], timeout=120)
        took = time.monotonic() - t0
        e.check(b.rc == 2, f"job B refused with exit 2 (got {b.rc}, {took:.1f} s)") or b.dump()
        e.check(f"is in use by {holder}" in b.stderr, "refusal names A's pid and host") or b.dump()
        e.check(not b.all(r"restart \d+ of"), "the refusal is not retried")
        e.check(a.poll() is None, "job A still running after B was refused")

        a.send_signal(signal.SIGTERM)
        try:
            arc = a.wait(timeout=60)
        except subprocess.TimeoutExpired:
            a.kill()
            arc = a.wait()
        a_log.close()
        e.check(arc == 143, f"job A stopped by SIGTERM exits 143 (got {arc})") or \
            print(open(p("a.log")).read()[-4000:])
        # A's checkpoints are there, so B may resume past its --steps: only the
        # lock matters here
        again = e.Run([*base, *train, "--steps", 20], timeout=120)
        e.check("is in use by" not in again.stderr,
                f"after A ended the directory is free (B exit {again.rc})") or again.dump()
    e.finish()


if __name__ == "__main__":
    main()
