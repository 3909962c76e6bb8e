#!/usr/bin/env python3
"""test_resume_past_steps.py - resuming from a checkpoint whose step is at
or past --steps trains nothing and ends normally: exit 0, the "nothing to
train" line, a done line without a rate (no negative samples/s), no new
checkpoint, the metrics file still valid (every line JSON, steps never
going back, no summary line of a step below the checkpoint's), and
--export-params writes the checkpoint's parameters. np=1 and np=2."""
import json
import os
import re
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks(show_ok=True)
check = checker.check


def metrics_valid(path, what):
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                check(False, f"{what}: metrics line is not JSON: {line!r}")
                return rows
    steps = [r["step"] for r in rows]
    check(steps == sorted(steps), f"{what}: metrics steps never go back: {steps}")
    return rows


def main():
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        rng = np.random.default_rng(9)
        x, _, y = rt_testlib.learnable_data(rng, 512, 16, 4)
        data = rt_testlib.write_dataset(p("train.h5"), x, y, 4)
        base = ["train", "--model", "mlp:16,8,4", "--data", data, "--batch", "8", "--threads", "1",
                "--log-every", "10"]
        for np_ in (0, 2):
            ck, m = p(f"ck{np_}"), p(f"m{np_}.jsonl")
            r = rt_testlib.run(rt_testlib.mpi_cmd(np_, [RINGTRAIN, *base, "--steps", "30", "--ckpt-dir", ck,
                                                        "--metrics", m]), timeout=120)
            check(r.returncode == 0, f"np={np_}: 30 steps: exit 0 ({r.stderr[-500:]})")
            before = metrics_valid(m, f"np={np_} first run")
            for steps in (30, 20):
                what = f"np={np_} resume at 30 with --steps {steps}"
                out = p(f"e{np_}_{steps}.h5")
                r = rt_testlib.run(rt_testlib.mpi_cmd(np_, [RINGTRAIN, *base[:-2], "--steps", str(steps),
                                                            "--ckpt-dir", ck, "--metrics", m,
                                                            "--export-params", out]), timeout=120)
                check(r.returncode == 0, f"{what}: exit 0 (got {r.returncode}) {r.stderr[-600:]}")
                check("nothing to train" in r.stdout, f"{what}: says there is nothing to train")
                done = [l for l in r.stdout.splitlines() if l.startswith("done")]
                check(len(done) <= 1 and not any(re.search(r"-\d", l) or "/s" in l for l in done),
                      f"{what}: no done line with a rate or a negative number: {done}")
                check(not re.search(r"^step \d+/", r.stdout, re.M), f"{what}: no step run")
                check(sorted(os.listdir(ck)) == [".lock", "ckpt-00000030.h5"],
                      f"{what}: no new checkpoint: {os.listdir(ck)}")
                after = metrics_valid(m, what)
                check(after == before, f"{what}: the metrics file is as the 30-step run left it: {after[-2:]}")
                if check(os.path.exists(out), f"{what}: --export-params written"):
                    with h5py.File(out, "r") as e, h5py.File(os.path.join(ck, "ckpt-00000030.h5"), "r") as c:
                        check(all(e["params"][k][()].tobytes() == c["params"][k][()].tobytes()
                                  for k in c["params"]), f"{what}: the export holds the checkpoint's parameters")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
