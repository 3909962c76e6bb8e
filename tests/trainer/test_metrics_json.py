#!/usr/bin/env python3
"""test_metrics_json.py - the --metrics file is strict JSON lines, also when
a step is not finite, and stays so across a resume (np=1, mlp:32,16,10 on
512 float records of which one holds a NaN, batch 64: 8 steps an epoch, the
NaN in one step of each; --skip-nonfinite, --log-every 1, evaluation every
4 steps on the same set, so every eval loss is NaN):

- every line is accepted by json.loads with NaN/Infinity refused; the steps
  the run reports as skipped, and only those, have "loss" and "grad_norm"
  null; every "eval_loss" is null, "eval_accuracy" a number; step,
  optimizer_bytes and skipped_steps are integers in the text; the keys that
  are left out when they do not apply (tokens_per_s, bits_per_byte) are
  absent, not null;
- resume: the same run killed before step 11 (RT_TEST_DIE_AT_STEP, a
  checkpoint every 4 steps, so it resumes from step 8), its file then given
  a line as an older build wrote it (a bare nan) and a cut-off last line;
  the resumed run drops both with a warning naming them, drops the killed
  run's lines past step 8, and ends with a file that parses line by line
  and equals the straight run's except for the wall-clock keys, the
  checkpoint lines (which time the writes) and the
  dropped line."""
import json
import os
import re
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import write_dataset  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check = checker.check

WALL = ("samples_per_s", "tokens_per_s", "mfu", "comm_exposed_ms", "train_seconds")


def train(args, expect_rc=0, env=None):
    cmd = [RINGTRAIN, "train"] + [str(a) for a in args]
    r = rt_testlib.run(cmd, timeout=120, env=env or {})
    if expect_rc is not None and r.returncode != expect_rc:
        check(False, f"exit {r.returncode} != {expect_rc}: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def refuse(name):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_lines(path, what):
    """Each line parsed with NaN, Infinity and -Infinity refused; None for a
    line that does not parse (a failed check names it)."""
    rows = []
    with open(path) as f:
        text = f.read()
    check(text.endswith("\n"), f"{what}: the file ends with a whole line")
    for n, line in enumerate(text.splitlines(), 1):
        try:
            rows.append(json.loads(line, parse_constant=refuse))
        except ValueError as e:
            check(False, f"{what}: line {n} is not strict JSON ({e}): {line!r}")
            rows.append(None)
    return text, rows


def sans_wall(rows):
    """The training's lines without the wall-clock keys; the checkpoint lines
    (the run's I/O, timed) are left out."""
    return [{k: v for k, v in r.items() if k not in WALL} for r in rows
            if r is not None and "checkpoint" not in r]


def skipped_steps(stderr):
    return {int(s) for s in re.findall(r"step (\d+): non-finite loss or gradient, update skipped", stderr)}


def main():
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        x, _, y = rt_testlib.learnable_data(rng, 512, 32, 10)
        xf = (x / 255.0).astype(np.float32)
        xf[100, 3] = np.nan
        data = write_dataset(p("nan.h5"), xf, y, 10)
        base = ["--model", "mlp:32,16,10", "--data", data, "--eval", data, "--eval-every", 4,
                "--batch", 64, "--steps", 16, "--threads", 1, "--log-every", 1, "--skip-nonfinite"]

        # 1. a straight run: null where a value was not finite
        r = train(base + ["--metrics", p("a.jsonl")])
        skipped = skipped_steps(r.stderr)
        check(len(skipped) == 2, f"one skipped step an epoch, reported on stderr: {sorted(skipped)}")
        text_a, rows_a = strict_lines(p("a.jsonl"), "straight run")
        check(not re.search(r"nan|inf", text_a, re.I), "straight run: no bare nan or inf in the file")
        steps = [r_ for r_ in rows_a if r_ is not None and "loss" in r_]
        evals = [r_ for r_ in rows_a if r_ is not None and "eval_loss" in r_]
        check([s["step"] for s in steps] == list(range(1, 17)), f"a step line per step: {len(steps)}")
        nulls = {s["step"] for s in steps if s["loss"] is None}
        check(nulls == skipped, f"loss null exactly at the skipped steps: {sorted(nulls)} vs {sorted(skipped)}")
        check(all((s["grad_norm"] is None) == (s["step"] in skipped) for s in steps),
              "grad_norm null exactly at the skipped steps")
        check(all(isinstance(s["loss"], float) and np.isfinite(s["loss"])
                  for s in steps if s["step"] not in skipped), "the other losses are finite numbers")
        check(all(type(s["step"]) is int and type(s["optimizer_bytes"]) is int and s["optimizer_bytes"] > 0
                  for s in steps), "step and optimizer_bytes are integers")
        check(all("tokens_per_s" not in s and "bits_per_byte" not in s for s in steps),
              "keys that do not apply are left out, not null")
        check([e["step"] for e in evals] == [4, 8, 12, 16] and
              all(e["eval_loss"] is None and isinstance(e["eval_accuracy"], float) for e in evals),
              f"eval lines: loss null, accuracy a number: {evals}")
        final = rows_a[-1] or {}
        check(final.get("skipped_steps") == 2 and type(final.get("skipped_steps")) is int and
              isinstance(final.get("params_hash"), str), f"summary line: {final}")

        # 2. killed before step 11, the file given two bad lines, resumed
        ck, mb = p("ck"), p("b.jsonl")
        die = {"RT_TEST_DIE_AT_STEP": "10", "RT_TEST_DIE_RANK": "0"}
        r = train(base + ["--ckpt-dir", ck, "--ckpt-every", 4, "--metrics", mb], None, env=die)
        check(r.returncode != 0 and "dies after 10 steps" in r.stderr,
              f"the run was killed after step 10: exit {r.returncode}\n{r.stderr}")
        _, rows_b = strict_lines(mb, "killed run")
        check(max((r_ or {}).get("step", 0) for r_ in rows_b) == 10, "killed run: lines up to step 10")
        with open(mb) as f:
            lines = f.read().splitlines(keepends=True)
        # an older build's line for a step before the checkpoint (it carries
        # its step number, so only the parse can drop it)
        old_step = next(s for s in (3, 2) if s not in skipped)
        at = next(i for i, line in enumerate(lines) if line.startswith('{"step":%d,"epoch"' % old_step))
        lines[at] = ('{"step":%d,"epoch":%.4f,"loss":nan,"lr":0.001,"samples_per_s":1.0,'
                     '"grad_norm":inf}\n' % (old_step, old_step / 8))
        with open(mb, "w") as f:
            f.write("".join(lines) + '{"step":11,"epoch":1.3')  # cut off mid-write
        r = train(base + ["--ckpt-dir", ck, "--ckpt-every", 4, "--metrics", mb])
        check(f"line {at + 1} is not a JSON object; dropped" in r.stderr,
              f"resume warns of the unparsable line {at + 1}: {r.stderr}")
        check(f"line {len(lines) + 1} is cut off" in r.stderr,
              f"resume warns of the cut-off line {len(lines) + 1}: {r.stderr}")
        text_b, rows_b = strict_lines(mb, "resumed run")
        check(not re.search(r"nan|inf", text_b, re.I), "resumed run: no bare nan or inf in the file")
        want = sans_wall(rows_a[:at] + rows_a[at + 1:])
        got = sans_wall(rows_b)
        check(got == want, "resumed file = straight run's less the dropped line (wall-clock keys aside):\n"
              + "\n".join(f"{a}\n{b}" for a, b in zip(got, want) if a != b))
        got_steps = [r_["step"] for r_ in rows_b if r_ and "loss" in r_]
        check(got_steps == [s for s in range(1, 17) if s != old_step],
              f"resumed run: each step line once, the killed run's past step 8 replaced: {got_steps}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
