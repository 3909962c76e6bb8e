#!/usr/bin/env python3
"""test_gpt_e2e.py - `ringtrain train` and `ringtrain eval` end to end for the
GPT-2 model (gpt:layers=2,dim=32,heads=2,ctx=16) on a byte-level tokens set
made here with `ringtrain data import-text` (1552 + 400 bytes of generated
text: 96 windows of ctx 16 with and without shuffling, 12 steps an epoch at
a global batch of 8, so 30 steps cross epoch boundaries):

- data-parallel equivalence, 30 steps each, exported parameters read with
  h5py, per tensor max|a-b| <= 1e-6 * max|b|, SGD momentum with warmup,
  cosine and clipping: np=2 x batch 4 against np=1 x batch 8, and np=3 x
  batch 4 against np=1 x batch 4 --accum 3, each with the shuffled sampler
  (per-epoch window shift and permutation) and with --no-shuffle; AdamW
  np=2 x 4 against np=1 x 8 within 1e-3 only (see the comment there);
- kill -9 of rank 1 (RT_TEST_DIE_AT_STEP, np=2) between two checkpoints
  (written with --ckpt-write sync, so that the newest is complete), then a restart with --resume auto on the same --ckpt-dir: it resumes from
  the newest checkpoint (epoch and sample position checked with h5py), its
  final parameters equal a straight run's byte for byte, and its metrics
  lines equal the straight run's but for wall-clock fields; shuffled AdamW
  resuming mid-epoch, and --accum 2 --no-shuffle SGD resuming at an epoch end;
- bad specs and specs that do not fit the data (dim not divisible by heads,
  missing keys, unknown and duplicate keys, ctx >= the set's tokens, a
  vocab below the set's, gpt on a classification set, mlp on a tokens set)
  exit 2 before any work: exactly one line on stderr naming the cause, no
  step, no --ckpt-dir created, no --metrics file; under mpirun (np=2) a
  data mismatch is reported once; `--device cuda` with no visible GPU exits
  2 naming the device (the GPT itself runs on CUDA: tests/gpu);
- `ringtrain eval` on the held-out tokens set: exit 0, valid JSON, a finite
  loss below ln 256 over all floor((T-1)/ctx) windows, bits per byte =
  loss / ln 2 when reported, the same loss on 1 and 2 ranks and for a
  checkpoint and the exported parameters of the same step, and the same as
  `train --eval` reported for the parameters it exported.
Every command runs with a deadline (a hung collective fails the test)."""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check = checker.check

CTX = 16
SPEC = f"gpt:layers=2,dim=32,heads=2,ctx={CTX}"
TRAIN_TOKENS = 96 * CTX + CTX  # 96 windows shuffled (T - ctx) // ctx and unshuffled (T - 1) // ctx
VAL_TOKENS = 400
WALL = ("samples_per_s", "tokens_per_s", "mfu", "comm_exposed_ms", "train_seconds")


def run(np_, cmd, timeout=120, env=None):
    """cmd (under mpiexec -np np_ unless 0) with a deadline: mpiexec aborts
    its ranks after `timeout` s (MPIEXEC_TIMEOUT), and Python kills what is
    left 15 s later. A timeout is a failure with exit code None."""
    cmd = rt_testlib.mpi_cmd(np_, [str(a) for a in cmd])
    try:
        return rt_testlib.run(cmd, timeout=timeout + 15, env={"MPIEXEC_TIMEOUT": str(timeout), **(env or {})})
    except subprocess.TimeoutExpired as e:
        check(False, f"timed out after {timeout + 15} s (a hang): {' '.join(cmd)}")
        text = [o.decode(errors="replace") if isinstance(o, bytes) else o or "" for o in (e.stdout, e.stderr)]
        return subprocess.CompletedProcess(cmd, None, *text)


def train(np_, args, expect_rc=0, env=None, timeout=120):
    r = run(np_, [RINGTRAIN, "train"] + list(args), timeout, env)
    if expect_rc is not None and r.returncode != expect_rc:
        check(False, f"exit {r.returncode} != {expect_rc}: {' '.join(r.args)}\n{r.stdout[-2000:]}\n{r.stderr}")
    return r


def params(path):
    with h5py.File(path, "r") as f:
        return {k: f["params"][k][()] for k in f["params"]}


def rel_diff(a, b):
    """Worst over tensors of max|a-b| / max|b| (float64)."""
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k])) / max(np.max(np.abs(b[k])), 1e-30))
               for k in b)


def compare(pa, pb, tol, what):
    if not (os.path.exists(pa) and os.path.exists(pb)):
        check(False, f"{what}: an exported parameter file is missing")
        return
    a, b = params(pa), params(pb)
    if not check(sorted(a) == sorted(b), f"{what}: parameter names differ"):
        return
    err = rel_diff(a, b)
    print(f"{what}: max relative difference {err:.2e}")
    check(err <= tol, f"{what}: parameters differ by {err:.3e} relative (> {tol:g})")
    check(any(np.any(a[k] != 0) for k in a), f"{what}: parameters are all zero")


def same_bytes(pa, pb, what):
    if not (os.path.exists(pa) and os.path.exists(pb)):
        check(False, f"{what}: an exported parameter file is missing")
        return
    a, b = params(pa), params(pb)
    ok = sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes()
                                        for k in a)
    if not ok and sorted(a) == sorted(b):
        print(f"{what}: max relative difference {rel_diff(a, b):.2e}")
    check(ok, f"{what}: /params identical byte for byte")


def metrics(path, keep):
    """The metrics lines whose step passes keep, less the wall-clock fields;
    a line that is not strict JSON (NaN, Infinity) is a failure, then read
    leniently."""
    rows = []
    with open(path) as f:
        for line in f:
            r = strict_json(line)
            if not check(r is not None, f"{os.path.basename(path)}: not valid JSON: {line.strip()}"):
                r = lenient_json(line)
            rows.append(r)
    # the checkpoint lines time the writes (the run's I/O): left out
    return [{k: v for k, v in r.items() if k not in WALL} for r in rows
            if keep(r["step"]) and "checkpoint" not in r]


def make_text(rng, n):
    words = ("the quick brown fox jumps over a lazy dog while seven wizards "
             "box and judge every query of jaded zebras").split()
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(words[rng.integers(len(words))])
    return (" ".join(out) + " ").encode()[:n]


def strict_json(text):
    """json.loads refusing NaN and Infinity (not JSON); None when invalid."""
    def bad(c):
        raise ValueError(c)
    try:
        return json.loads(text, parse_constant=bad)
    except ValueError:
        return None


def lenient_json(text):
    """Reads C's printf of NaN (nan, -nan) too, to check on past a bad line."""
    return json.loads(re.sub(r":-?nan\b", ":NaN", text))


def main():
    rng = np.random.default_rng(23)
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        with open(p("text.txt"), "wb") as f:
            f.write(make_text(rng, TRAIN_TOKENS + VAL_TOKENS))
        r = run(0, [RINGTRAIN, "data", "import-text", "--input", p("text.txt"), "--out", p("train.h5"),
                    "--val-out", p("val.h5"), "--val-fraction", VAL_TOKENS / (TRAIN_TOKENS + VAL_TOKENS)], 60)
        if not check(r.returncode == 0, f"import-text: {r.stderr}"):
            return checker.summary()
        with h5py.File(p("train.h5"), "r") as f:
            check(f["tokens"].shape == (TRAIN_TOKENS,) and int(f.attrs["vocab_size"]) == 256,
                  f"train set: {f['tokens'].shape} tokens, vocab {f.attrs['vocab_size']}")
        train_h5, val_h5 = p("train.h5"), p("val.h5")
        base = ["--model", SPEC, "--data", train_h5, "--steps", 30, "--seed", 5, "--threads", 1,
                "--device", "cpu", "--log-every", 10]
        adamw = ["--optimizer", "adamw", "--lr", 3e-3, "--warmup", 5, "--schedule", "cosine",
                 "--grad-clip", 1.0]
        sgd = ["--optimizer", "sgd", "--lr", 0.05, "--momentum", 0.9, "--warmup", 5, "--schedule", "cosine",
               "--grad-clip", 1.0]

        # 1. data-parallel equivalence. SGD momentum (with warmup, cosine and
        # clipping) at 1e-6: float32 rounding of the different summation
        # orders measures 3e-7..5e-7 here. AdamW is compared at 1e-3 only: it
        # turns gradients near its eps (1e-8) into full-size steps, and the key
        # third of every attn.c_attn.bias has a gradient of exactly zero in
        # exact arithmetic (softmax ignores a per-row shift), so those entries
        # follow rounding noise (measured 1e-4 relative; other data: ~1).
        pairs = [("unshuffled np=2 x 4 vs np=1 x 8", "u", ["--no-shuffle"], (2, 4, 1), (0, 8, 1)),
                 ("shuffled np=2 x 4 vs np=1 x 8", "s", [], (2, 4, 1), (0, 8, 1)),
                 ("shuffled np=3 x 4 vs np=1 x 4 x accum 3", "a", [], (3, 4, 1), (0, 4, 3)),
                 ("unshuffled np=3 x 4 vs np=1 x 4 x accum 3", "b", ["--no-shuffle"], (3, 4, 1), (0, 4, 3))]
        for what, tag, extra, *runs in pairs:
            for (np_, batch, accum), end in zip(runs, ("N", "1")):
                more = ["--eval", val_h5, "--metrics", p(f"{tag}N.jsonl")] if tag == "u" and np_ else []
                train(np_, base + sgd + extra + ["--batch", batch, "--accum", accum,
                                                 "--export-params", p(f"{tag}{end}.h5")] + more)
            compare(p(f"{tag}N.h5"), p(f"{tag}1.h5"), 1e-6, what)
        if os.path.exists(p("s1.h5")) and os.path.exists(p("u1.h5")):
            err = rel_diff(params(p("s1.h5")), params(p("u1.h5")))
            check(err > 1e-2, f"shuffled and unshuffled runs differ (the sampler shuffles windows): {err:.2e}")
        train(2, base + adamw + ["--batch", 4, "--export-params", p("w2.h5")])
        train(0, base + adamw + ["--batch", 8, "--export-params", p("w1.h5")])
        compare(p("w2.h5"), p("w1.h5"), 1e-3, "AdamW shuffled np=2 x 4 vs np=1 x 8")
        if os.path.exists(p("uN.jsonl")):
            rows = metrics(p("uN.jsonl"), lambda s: True)
            steps = [r for r in rows if "loss" in r]
            check([r["step"] for r in steps] == [10, 20, 30] and
                  all(math.isfinite(r["loss"]) for r in steps) and steps[-1]["loss"] < steps[0]["loss"],
                  f"metrics: finite, falling loss at steps 10, 20, 30: {steps}")
            check(steps and abs(steps[-1]["epoch"] - 30 / 12) < 0.01,
                  f"96 windows / 8 per step = 12 steps an epoch: {steps[-1:]}")
            evals = [r for r in rows if "eval_loss" in r]
            check(len(evals) == 1 and evals[0]["step"] == 30 and math.isfinite(evals[0]["eval_loss"]),
                  f"--eval on the tokens set after the last step: {evals}")

        # 2. kill -9 of rank 1 between checkpoints, restart with --resume auto.
        # 8 windows per step, 12 steps an epoch: K dies after 17 steps and
        # resumes in epoch 1 from step 15 (a new window shift and order); L
        # dies after 13 steps and resumes from the epoch end at step 12.
        variants = [("shuffled adamw", "K", base + adamw + ["--batch", 4, "--ckpt-every", 5], 17, 15),
                    ("accum 2 unshuffled sgd", "L",
                     base + sgd + ["--batch", 2, "--accum", 2, "--no-shuffle", "--ckpt-every", 4], 13, 12)]
        for what, tag, args, die_at, last in variants:
            die = {"RT_TEST_DIE_AT_STEP": str(die_at), "RT_TEST_DIE_RANK": "1"}
            train(2, args + ["--ckpt-dir", p(f"ck{tag}0"), "--export-params", p(f"{tag}0.h5"),
                             "--metrics", p(f"{tag}0.jsonl")])
            # written synchronously: an asynchronous write may still be in
            # flight when the job is torn down, leaving the checkpoint before
            r = train(2, args + ["--ckpt-dir", p(f"ck{tag}"), "--metrics", p(f"{tag}.jsonl"),
                                 "--ckpt-write", "sync"], None, env=die)
            check(r.returncode != 0 and f"RT_TEST_DIE_AT_STEP: rank 1 dies after {die_at} steps" in r.stderr,
                  f"{what}: rank 1 was killed after step {die_at}: exit {r.returncode}\n{r.stderr}")
            ck = f"ckpt-{last:08d}.h5"
            left = sorted(os.listdir(p(f"ck{tag}"))) if os.path.isdir(p(f"ck{tag}")) else []
            check(left and left[-1] == ck and not any(".tmp" in n for n in left),
                  f"{what}: the killed run's newest checkpoint is {ck}: {left}")
            if ck in left:
                with h5py.File(p(f"ck{tag}/{ck}"), "r") as f:
                    got = (int(f["data/epoch"][()]), int(f["data/position"][()]), int(f["train/step"][()]))
                check(got == (1, (last - 12) * 8, last), f"{what}: {ck} holds epoch 1, position "
                      f"{(last - 12) * 8} samples, step {last}: {got}")
            r = train(2, args + ["--ckpt-dir", p(f"ck{tag}"), "--export-params", p(f"{tag}.h5"),
                                 "--metrics", p(f"{tag}.jsonl")], env=die)
            check("resumed from " + p(f"ck{tag}/{ck}") in r.stderr, f"{what}: resumed from {ck}: {r.stderr}")
            same_bytes(p(f"{tag}0.h5"), p(f"{tag}.h5"),
                       f"{what}: 30 straight vs killed after {die_at} + resume from {last}")
            if os.path.exists(p(f"{tag}.jsonl")) and os.path.exists(p(f"{tag}0.jsonl")):
                ma = metrics(p(f"{tag}0.jsonl"), lambda s: s > last)
                mb = metrics(p(f"{tag}.jsonl"), lambda s: s > last)
                check(ma and ma == mb, f"{what}: metrics after step {last} equal:\n{ma}\n{mb}")
                check(metrics(p(f"{tag}0.jsonl"), lambda s: s <= last) ==
                      metrics(p(f"{tag}.jsonl"), lambda s: s <= last),
                      f"{what}: metrics up to step {last} kept")

        # 3. bad specs: exit 2 before any work, one line naming the cause
        x, _, y = rt_testlib.learnable_data(rng, 64, 16, 4)
        cls_h5 = rt_testlib.write_dataset(p("cls.h5"), x, y, 4)
        big = TRAIN_TOKENS
        cases = [
            ("gpt:heads=5,dim=384,layers=1,ctx=8", train_h5, ["not divisible"]),
            # missing layers and ctx, and dim not divisible: either reason names a cause
            ("gpt:heads=5,dim=384", train_h5, ["missing", "not divisible"]),
            ("gpt:heads=4,dim=384", train_h5, ["layers is missing"]),
            ("gpt:layers=1,dim=32,heads=2", train_h5, ["ctx is missing"]),
            (f"gpt:layers=1,dim=32,heads=2,ctx={big}", train_h5, [f"{big} tokens"]),
            (f"gpt:layers=1,dim=32,heads=2,ctx={big + 7}", train_h5, [f"{big} tokens"]),
            (f"{SPEC},vocab=100", train_h5, ["vocabulary of 256"]),
            (SPEC, cls_h5, ["classification"]),
            ("mlp:16,4", train_h5, ["tokens"]),
            (f"{SPEC},bogus=3", train_h5, ["unknown key 'bogus'"]),
            (f"{SPEC},heads=2", train_h5, ["heads given twice"]),
            ("gpt:layers=1,dim=32,ctx=8,heads=2,dim=32", train_h5, ["dim given twice"]),
        ]
        for i, (spec, data, words) in enumerate(cases):
            ckd, met = p(f"bad_ck{i}"), p(f"bad{i}.jsonl")
            r = train(0, ["--model", spec, "--data", data, "--batch", 2, "--steps", 3, "--threads", 1,
                          "--ckpt-dir", ckd, "--metrics", met], 2)
            lines = r.stderr.strip().splitlines()
            check(len(lines) == 1 and any(w in lines[0] for w in words),
                  f"{spec} on {os.path.basename(data)}: one line naming {words}, got {r.stderr!r}")
            check(not re.search(r"^step \d+/", r.stdout, re.M), f"{spec}: no step was run: {r.stdout!r}")
            check(not os.path.exists(ckd), f"{spec}: --ckpt-dir was created before the refusal")
            check(not os.path.exists(met), f"{spec}: --metrics file written before the refusal")
        r = train(2, ["--model", f"{SPEC},vocab=100", "--data", train_h5, "--batch", 2, "--steps", 3,
                      "--threads", 1], 2)
        check(r.stderr.count("vocabulary of 256") == 1, f"np=2 vocab mismatch: one message: {r.stderr!r}")
        # --device cuda: the GPT has CUDA ops (tests/gpu runs them); with no
        # visible GPU (hidden here, so on every machine) the refusal is the
        # device's, exit 2 before any step, and never the model's
        r = train(0, ["--model", SPEC, "--data", train_h5, "--batch", 2, "--steps", 3, "--threads", 1,
                      "--device", "cuda"], 2, env={"CUDA_VISIBLE_DEVICES": ""})
        check(("no CUDA device" in r.stderr or "no CUDA path" in r.stderr) and
              "transformer" not in r.stderr and not re.search(r"^step \d+/", r.stdout, re.M),
              f"gpt --device cuda without a visible GPU: the device is named: {r.stderr!r}")

        # 4. ringtrain eval on the held-out tokens set
        ck = p("ckK0/ckpt-00000030.h5")
        windows = (VAL_TOKENS - 1) // CTX
        losses = {}
        for np_, src in ((0, ck), (2, ck), (0, p("K0.h5"))):
            r = run(np_, [RINGTRAIN, "eval", "--ckpt", src, "--data", val_h5, "--batch", 7, "--json"], 60)
            what = f"eval np={np_ or 1} {os.path.basename(src)}"
            if not check(r.returncode == 0 and r.stdout.strip(), f"{what}: exit {r.returncode} {r.stderr}"):
                continue
            line = r.stdout.strip().splitlines()[-1]
            e = strict_json(line)
            check(e is not None, f"{what}: --json output is not valid JSON: {line}")
            if e is None:  # read on to check the loss
                e = lenient_json(line)
            loss = e.get("eval_loss")
            check(isinstance(loss, float) and math.isfinite(loss) and 0 < loss < math.log(256),
                  f"{what}: finite loss below ln 256 (the model learned something): {e}")
            check(e.get("windows", e.get("records")) == windows, f"{what}: {windows} windows evaluated: {e}")
            if "eval_bits_per_byte" in e:
                check(abs(e["eval_bits_per_byte"] - loss / math.log(2)) <= 1e-6 * loss,
                      f"{what}: bits per byte = loss / ln 2: {e}")
            losses[(np_, src)] = loss
        if len(losses) == 3:
            vals = list(losses.values())
            print(f"eval loss {vals[0]:.6f}; np=2 {vals[1]:.6f}; exported params {vals[2]:.6f}")
            check(abs(vals[1] - vals[0]) <= 1e-6 * vals[0], f"eval np=2 {vals[1]} != np=1 {vals[0]}")
            check(vals[2] == vals[0], f"eval of the exported parameters {vals[2]} != checkpoint {vals[0]}")
        # the evaluation in training (uN.jsonl, after step 30) equals ringtrain
        # eval of the parameters it exported
        r = run(0, [RINGTRAIN, "eval", "--ckpt", p("uN.h5"), "--data", val_h5, "--json"], 60)
        evals = [r_ for r_ in metrics(p("uN.jsonl"), lambda s: True) if "eval_loss" in r_] \
            if os.path.exists(p("uN.jsonl")) else []
        if check(r.returncode == 0 and evals, f"eval of uN.h5: {r.stderr}"):
            got = lenient_json(r.stdout.strip().splitlines()[-1])["eval_loss"]
            want = evals[-1]["eval_loss"]
            print(f"train --eval loss {want:.6f}; ringtrain eval of its exported parameters {got:.6f}")
            check(abs(got - want) <= 1e-5 * want, f"ringtrain eval {got} != train --eval {want}")
        r = run(0, [RINGTRAIN, "eval", "--ckpt", ck, "--data", val_h5], 60)
        check(r.returncode == 0 and "loss" in r.stdout, f"eval text output: {r.stdout} {r.stderr}")
        print(r.stdout.strip())
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
