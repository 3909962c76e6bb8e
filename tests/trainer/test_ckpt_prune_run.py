#!/usr/bin/env python3
"""test_ckpt_prune_run.py - `ringtrain train --keep N` prunes only what the
run may delete (docs/CHECKPOINTS.md, "Pruning"): it keeps the run's own
newest N checkpoints and never deletes a file of a higher step, a file
another run wrote, or a file that does not verify; those are named once, on
one stderr line.

- unverifiable ckpt-80/90/100 in the directory, --keep 3, a run from step 0
  writing 10..50: 30, 40, 50 and the three old files remain, one line names
  the old files;
- valid ckpt-80/90/100 of an earlier run and --resume never: the same, and
  the old files are byte-identical afterwards;
- a resumed run prunes the history it continues (the checkpoints up to the
  one it resumed from) like its own, but keeps a history file that does not
  verify and names it.
np=1 (rank 0 alone writes and prunes), mlp:32,48,10, 2048 records."""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks(show_ok=True)
check = checker.check


def ckpt(step):
    return f"ckpt-{step:08d}.h5"


def listing(d):
    return sorted(n for n in os.listdir(d) if n.startswith("ckpt-"))


def prune_lines(stderr):
    return [line for line in stderr.splitlines() if "prune:" in line]


def flip_byte(path):
    import h5py
    with h5py.File(path, "r") as f:
        off = f["params/fc1.weight"].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(off + 5)
        b = f.read(1)
        f.seek(off + 5)
        f.write(bytes([b[0] ^ 0x40]))


def main():
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        rng = np.random.default_rng(3)
        x, _, y = rt_testlib.learnable_data(rng, 2048, 32, 10)
        data = rt_testlib.write_dataset(p("train.h5"), x, y, 10)
        base = [RINGTRAIN, "train", "--model", "mlp:32,48,10", "--data", data, "--batch", "16",
                "--threads", "1", "--log-every", "1000", "--ckpt-every", "10", "--keep", "3"]

        def train(ck, steps, *extra):
            r = rt_testlib.run(base + ["--ckpt-dir", ck, "--steps", str(steps), *extra], timeout=120)
            check(r.returncode == 0, f"train {ck} --steps {steps} {' '.join(extra)}: exit 0 "
                  f"(got {r.returncode})") or print(r.stdout[-2000:], r.stderr[-2000:])
            return r

        # 1. unverifiable files of higher steps, --resume auto starts at 0
        ck = p("junk")
        os.mkdir(ck)
        for s in (80, 90, 100):
            with open(os.path.join(ck, ckpt(s)), "w") as f:
                f.write("not a checkpoint\n")
        r = train(ck, 50)
        want = [ckpt(s) for s in (30, 40, 50, 80, 90, 100)]
        check(listing(ck) == want, f"junk: this run's newest 3 and the old files remain: {listing(ck)}")
        lines = prune_lines(r.stderr)
        check(len(lines) == 1 and all(ckpt(s) in lines[0] for s in (80, 90, 100)),
              f"junk: one line names the files left alone: {lines}")

        # 2. valid checkpoints of an earlier run, --resume never
        ck = p("old")
        train(ck, 100)
        check(listing(ck) == [ckpt(s) for s in (80, 90, 100)], f"old run left 80, 90, 100: {listing(ck)}")
        before = {s: open(os.path.join(ck, ckpt(s)), "rb").read() for s in (80, 90, 100)}
        r = train(ck, 50, "--resume", "never")
        check(listing(ck) == want, f"--resume never: this run's newest 3 and the old files: {listing(ck)}")
        check(all(os.path.exists(os.path.join(ck, ckpt(s))) and
                  open(os.path.join(ck, ckpt(s)), "rb").read() == before[s] for s in (80, 90, 100)),
              "--resume never: the earlier run's checkpoints are untouched")
        lines = prune_lines(r.stderr)
        check(len(lines) == 1 and all(ckpt(s) in lines[0] for s in (80, 90, 100)),
              f"--resume never: one line names the files left alone: {lines}")

        # 3. a resumed run prunes its history, but not a file that does not verify
        ck = p("hist")
        train(ck, 30)
        check(listing(ck) == [ckpt(s) for s in (10, 20, 30)], f"history 10, 20, 30: {listing(ck)}")
        flip_byte(os.path.join(ck, ckpt(10)))
        r = train(ck, 60)
        check("resumed from " + os.path.join(ck, ckpt(30)) in r.stderr, "resumed from ckpt-30")
        check(listing(ck) == [ckpt(s) for s in (10, 40, 50, 60)],
              f"resumed: 20 and 30 pruned, the corrupt 10 kept: {listing(ck)}")
        lines = prune_lines(r.stderr)
        check(len(lines) == 1 and ckpt(10) in lines[0] and "verif" in lines[0],
              f"resumed: one line names the file that does not verify: {lines}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
