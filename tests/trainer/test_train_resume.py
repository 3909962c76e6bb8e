#!/usr/bin/env python3
"""test_train_resume.py - `ringtrain train` checkpoints and resume, end to end
(mlp:32,48,10, AdamW with warmup and a cosine schedule, 2000 records, so
an epoch is 62 steps and the runs cross epoch boundaries):

- exact resume: 200 steps straight (np=2) against the same job killed after
  step 100 (test hook RT_TEST_DIE_AT_STEP=100 on rank 1, checkpoint every
  100, written with --ckpt-write sync so that it is complete when rank 1
  dies) and resumed with --resume auto (asynchronous checkpoints from
  there, as in the straight run): the final /params datasets equal byte
  for byte (h5py), and every metrics line after step 100 equals the
  straight run's in all fields except the wall-clock ones (samples_per_s,
  mfu, train_seconds; the checkpoint lines, which time the writes, are
  left out);
- the same with --accum 2 and SGD momentum, killed at an epoch's last step
  (62): parameters and metrics after it identical; --keep 1 keeps only the
  final checkpoint;
- np=2 -> np=1 with the same global batch (--batch derived from the
  checkpoint): parameters within 1e-6 relative (max-norm per tensor);
- np=2 -> np=3: the global batch 32 cannot be kept: exit 2, message with the
  numbers; the same with an explicit --batch;
- another model spec: exit 2 naming both specs; another optimizer: exit 2;
- a newer format_version (set with h5py): refused with the version;
- corruption: a flipped byte in the newest checkpoint's /params dataset:
  --resume auto says it skips that file (checksum) and resumes from the
  older one, ending with the straight run's parameters;
- --resume never ignores existing checkpoints (starts at step 0: its first
  metrics line equals the straight run's); --resume PATH uses that file
  even when a newer one exists;
- an unwritable checkpoint directory (a path below a regular file): error
  before any step; a checkpoint write that fails (a full tmpfs, np=2,
  asynchronous): exit 1 naming the step, the job stops at the first step
  after the failed write ended (at the latest at the next checkpoint, which
  waits for it), earlier checkpoints byte-identical, no temporary file left;
- SIGTERM (np=1): the run stops between steps with exit 143, writes a final
  checkpoint of the step it stopped at, which `ringtrain ckpt verify` accepts.
The checkpoint's contents (names, config JSON) are checked with h5py."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import write_dataset  # noqa: E402,F401

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def train(np_, args, expect_rc=0, env=None, preexec=None):
    cmd = rt_testlib.mpi_cmd(np_, [RINGTRAIN, "train"] + [str(a) for a in args])
    r = rt_testlib.run(cmd, timeout=240, env=env or {}, preexec_fn=preexec)
    if expect_rc is not None and r.returncode != expect_rc:
        check(False, f"exit {r.returncode} != {expect_rc}: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def params(path):
    with h5py.File(path, "r") as f:
        return {k: f["params"][k][()] for k in f["params"]}


def same_params(a, b, what):
    ok = sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes()
                                        for k in a)
    check(ok, f"{what}: /params identical byte for byte")


def rel_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k])) / max(np.max(np.abs(b[k])), 1e-30))
               for k in a)


WALL = ("samples_per_s", "tokens_per_s", "mfu", "comm_exposed_ms", "train_seconds")


def metrics_rows(path):
    """The lines of the training, less the checkpoint lines (when a write
    ended, and how long it took, are the run's I/O, not its training)."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k not in WALL} for r in rows if "checkpoint" not in r]


def metrics_after(path, step):
    return [r for r in metrics_rows(path) if r["step"] > step]


def metrics_upto(path, step):
    return [r for r in metrics_rows(path) if r["step"] <= step]


def flip_byte(path, dataset):
    with h5py.File(path, "r") as f:
        off = f[dataset].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(off + 5)
        b = f.read(1)
        f.seek(off + 5)
        f.write(bytes([b[0] ^ 0x40]))


def main():
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        F, C, N = 32, 10, 2000
        x, w, y = rt_testlib.learnable_data(rng, N, F, C)
        train_h5 = write_dataset(p("train.h5"), x, y, C)
        xe = rng.integers(0, 256, (301, F), dtype=np.uint8)
        eval_h5 = write_dataset(p("eval.h5"), xe, ((xe / 255.0) @ w).argmax(1).astype(np.uint8), C)
        spec = f"mlp:{F},48,{C}"
        base = {"model": spec, "data": train_h5, "eval": eval_h5, "eval-every": 50, "steps": 200,
                "optimizer": "adamw", "lr": 3e-3, "warmup": 20, "schedule": "cosine", "grad-clip": 1.0,
                "seed": 11, "log-every": 15, "threads": 1, "ckpt-every": 100}

        def job(**kw):
            out = []
            for k, v in {**base, **{k.replace("_", "-"): v for k, v in kw.items()}}.items():
                if v is not None:
                    out += [f"--{k}", v]
            return out
        common = job()
        no_dir = job(ckpt_every=None)  # --ckpt-every needs --ckpt-dir

        # 1. straight, and killed after 100 steps then resumed (np=2 both)
        train(2, common + ["--batch", 16, "--ckpt-dir", p("ckA"), "--export-params", p("A.h5"),
                           "--metrics", p("A.jsonl")])
        # (the killed runs write synchronously: an asynchronous write may
        # still be in flight when the job is torn down after rank 1's death,
        # and then the run resumes from the checkpoint before, as it should)
        r = train(2, common + ["--batch", 16, "--ckpt-dir", p("ckB"), "--metrics", p("B.jsonl"),
                               "--ckpt-write", "sync"],
                  None, env={"RT_TEST_DIE_AT_STEP": "100", "RT_TEST_DIE_RANK": "1"})
        check(r.returncode != 0 and "RT_TEST_DIE_AT_STEP" in r.stderr, f"the die hook fired: {r.stderr}")
        check(sorted(os.listdir(p("ckB"))) == [".lock", "ckpt-00000100.h5"],
              f"killed run left ckpt-00000100.h5: {os.listdir(p('ckB'))}")
        shutil.copytree(p("ckB"), p("ckB0"))
        r = train(2, common + ["--ckpt-dir", p("ckB"), "--export-params", p("B.h5"),
                               "--metrics", p("B.jsonl")],
                  env={"RT_TEST_DIE_AT_STEP": "100", "RT_TEST_DIE_RANK": "1"})
        check("resumed from " + p("ckB/ckpt-00000100.h5") in r.stderr,
              f"says which checkpoint it resumed: {r.stderr}")
        if os.path.exists(p("A.h5")) and os.path.exists(p("B.h5")):
            same_params(params(p("A.h5")), params(p("B.h5")), "np=2 200 straight vs 100+resume+100")
            ma, mb = metrics_after(p("A.jsonl"), 100), metrics_after(p("B.jsonl"), 100)
            check(len(ma) == 11 and ma == mb, f"metrics after step 100 equal:\n{ma}\n{mb}")
            check(metrics_upto(p("A.jsonl"), 100) == metrics_upto(p("B.jsonl"), 100),
                  "the resumed run kept the killed run's metrics lines up to step 100")
        # 1b. accumulation and SGD momentum, checkpoint at an epoch's end (62
        # steps of 2 x 8 rows per rank; the loader's unused tail batch must not
        # count): straight 80 steps vs killed after 62 and resumed
        sgd = job(batch=8, accum=2, optimizer="sgd", lr=0.05, momentum=0.9, steps=80, ckpt_every=62,
                  eval=None, eval_every=None, log_every=9)
        train(2, sgd + ["--ckpt-dir", p("ckG"), "--keep", 1, "--export-params", p("G.h5"),
                        "--metrics", p("G.jsonl")])
        check(sorted(os.listdir(p("ckG"))) == [".lock", "ckpt-00000080.h5"],
              f"--keep 1 leaves the newest only: {os.listdir(p('ckG'))}")
        train(2, sgd + ["--ckpt-dir", p("ckH"), "--ckpt-write", "sync"], None, env={"RT_TEST_DIE_AT_STEP": "62"})
        r = train(2, sgd + ["--ckpt-dir", p("ckH"), "--export-params", p("H.h5"), "--metrics", p("H.jsonl")])
        check("resumed from " + p("ckH/ckpt-00000062.h5") in r.stderr, f"accum run resumed at 62: {r.stderr}")
        if os.path.exists(p("G.h5")) and os.path.exists(p("H.h5")):
            same_params(params(p("G.h5")), params(p("H.h5")), "accum 2 + SGD momentum, resume at an epoch end")
            check(metrics_after(p("G.jsonl"), 62) == metrics_after(p("H.jsonl"), 62),
                  "accum run: metrics after step 62 equal")
        with h5py.File(p("ckH/ckpt-00000062.h5"), "r") as f:
            check(int(f["data/epoch"][()]) == 1 and int(f["data/position"][()]) == 0
                  and "optimizer/momentum/fc1.weight" in f, "epoch-end checkpoint: epoch 1, position 0, momentum")

        ck = p("ckA/ckpt-00000100.h5")
        with h5py.File(ck, "r") as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            want = {f"{g}{k}" for g in ("params/", "optimizer/m/", "optimizer/v/")
                    for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")} | \
                {"optimizer/step", "train/step", "train/skipped", "train/loss_sum", "train/loss_count",
                 "data/seed", "data/epoch", "data/position", "data/batch", "data/accum", "data/world",
                 "rng/init_seed"}
            check(set(names) == want, f"checkpoint datasets: {sorted(set(names) ^ want)}")
            cfg = json.loads(f.attrs["config"])
            check(cfg.get("lr") == 3e-3 and cfg.get("schedule") == "cosine" and cfg.get("batch") == 16
                  and cfg.get("world") == 2 and cfg.get("ckpt_every") == 100, f"config JSON: {cfg}")
            check(int(f["data/epoch"][()]) == 1 and int(f["data/position"][()]) == (100 - 62) * 32
                  and int(f["optimizer/step"][()]) == 100 and int(f["train/step"][()]) == 100,
                  "sampler position: epoch 1, (100 - 62) x 32 samples; 100 steps")
            check(f["params/fc1.weight"].shape == (48, F), "fc1.weight is [out, in]")

        # 2. np=2 -> np=1, global batch 32 kept (batch derived)
        r = train(0, no_dir + ["--resume", p("ckB0/ckpt-00000100.h5"), "--export-params", p("B1.h5")])
        check("2 ranks x batch 16" in r.stderr, f"np=1 resume names the writer's batch: {r.stderr}")
        if os.path.exists(p("B1.h5")) and os.path.exists(p("A.h5")):
            err = rel_diff(params(p("B1.h5")), params(p("A.h5")))
            print(f"np=2 -> np=1 resume vs np=2 straight: max relative difference {err:.2e}")
            check(err <= 1e-6, f"np=2 -> np=1 within 1e-6 relative ({err:.2e})")

        # 3. refusals (exit 2)
        ck0 = p("ckB0/ckpt-00000100.h5")
        r = train(3, no_dir + ["--resume", ck0], 2)
        check("global batch 32" in r.stderr and "3 ranks" in r.stderr, f"np=3 refused: {r.stderr}")
        r = train(3, no_dir + ["--resume", ck0, "--batch", 16], 2)
        check("global batch is 32" in r.stderr and "gives 48" in r.stderr, f"np=3 --batch 16: {r.stderr}")
        r = train(0, job(model=f"mlp:{F},64,{C}", resume=ck0, ckpt_every=None), 2)
        check(spec in r.stderr and f"mlp:{F},64,{C}" in r.stderr, f"other spec names both: {r.stderr}")
        r = train(0, job(resume=ck0, optimizer="sgd", ckpt_every=None), 2)
        check("adamw optimizer state" in r.stderr, f"other optimizer refused: {r.stderr}")
        newer = p("newer.h5")
        shutil.copy(ck0, newer)
        with h5py.File(newer, "r+") as f:
            f.attrs.modify("format_version", np.int64(2))
        r = train(0, no_dir + ["--resume", newer], 2)
        check("format_version 2" in r.stderr, f"newer version refused with it: {r.stderr}")

        # 4. corruption: the newest checkpoint is skipped with its reason
        shutil.copytree(p("ckA"), p("ckC"))
        os.remove(p("ckC/.lock"))
        shutil.copy(p("ckA/ckpt-00000100.h5"), p("ckC/ckpt-00000100.h5"))
        flip_byte(p("ckC/ckpt-00000200.h5"), "params/fc1.weight")
        r = train(2, common + ["--batch", 16, "--ckpt-dir", p("ckC"),
                               "--export-params", p("C.h5")])
        check("skip " + p("ckC/ckpt-00000200.h5") in r.stderr and "checksum" in r.stderr,
              f"corrupt newest skipped with the reason: {r.stderr}")
        check("resumed from " + p("ckC/ckpt-00000100.h5") in r.stderr, "resumed from the older one")
        if os.path.exists(p("C.h5")):
            same_params(params(p("A.h5")), params(p("C.h5")), "resume past a corrupt checkpoint")

        # 5. --resume never / PATH
        r = train(2, job(batch=16, ckpt_dir=p("ckA"), resume="never", steps=15, ckpt_every=0,
                         metrics=p("N.jsonl")))
        check("resumed" not in r.stderr, "--resume never does not resume")
        if os.path.exists(p("N.jsonl")):
            with open(p("A.jsonl")) as fa, open(p("N.jsonl")) as fn:
                first_a, first_n = json.loads(fa.readline()), json.loads(fn.readline())
            check(first_n["step"] == 15 and first_n["loss"] == first_a["loss"],
                  f"--resume never starts at step 0: {first_n} vs {first_a}")
        r = train(2, job(batch=16, ckpt_dir=p("ckC"), resume=p("ckA/ckpt-00000100.h5"), ckpt_every=0))
        check("resumed from " + p("ckA/ckpt-00000100.h5") in r.stderr, f"--resume PATH: {r.stderr}")

        # 6. unwritable directory: error before training
        open(p("plain"), "w").close()
        r = train(2, common + ["--batch", 16, "--ckpt-dir", p("plain/ck"), "--metrics", p("U.jsonl")], None)
        check(r.returncode == 2 and "plain/ck" in r.stderr and "step 1" not in r.stdout
              and not os.path.exists(p("U.jsonl")), f"unwritable --ckpt-dir fails first: {r.returncode} {r.stderr}")
        # a full disk (a 160 kB tmpfs holding one 95 kB checkpoint; needs root
        # and mount, else this part is reported and left out): the write of the
        # next checkpoint fails, training stops, the earlier one is untouched
        mnt = p("small")
        os.mkdir(mnt)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", mnt],
                          capture_output=True).returncode != 0:
            print("note: full-disk case left out (cannot mount a tmpfs here)")
        else:
            try:
                os.mkdir(os.path.join(mnt, "ck"))
                shutil.copy(ck0, os.path.join(mnt, "ck"))
                kept = os.path.join(mnt, "ck", "ckpt-00000100.h5")
                before = open(kept, "rb").read()
                r = train(2, job(ckpt_dir=os.path.join(mnt, "ck"), ckpt_every=10), None)
                # (asynchronous: the job stops at the first step after the
                # write ended, at the latest at the next checkpoint, 120,
                # which waits for it; step 120 may be logged before that)
                check(r.returncode == 1 and "step 110" in r.stderr and "step 135/" not in r.stdout,
                      f"full disk stops the job: {r.returncode}\n{r.stdout[-600:]}\n{r.stderr}")
                left = sorted(os.listdir(os.path.join(mnt, "ck")))
                check(left == [".lock", "ckpt-00000100.h5"] and open(kept, "rb").read() == before,
                      f"earlier checkpoint untouched, no temporary file left: {left}")
            finally:
                subprocess.run(["umount", mnt])

        # 7. SIGTERM: stop between steps with a final checkpoint
        proc = subprocess.Popen([RINGTRAIN, "train"] + [str(a) for a in job(
                                    batch=16, steps=10**8, ckpt_dir=p("ckS"), log_every=1000, eval=None,
                                    eval_every=None, ckpt_every=None, schedule=None, warmup=None)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The signal goes after the run's header line: the handler is in
        # place before the session prints it (a fixed sleep could signal a
        # process still starting, which then dies of SIGTERM: exit -15).
        seen = []
        while not seen or (seen[-1] and not seen[-1].startswith("train ")):
            seen.append(proc.stdout.readline())
        check(seen[-1].startswith("train "), f"header line before the signal: {seen}")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        out = "".join(seen) + out
        check(proc.returncode == 143, f"SIGTERM: exit 143 (got {proc.returncode}) {err}")
        stop = [l for l in out.splitlines() if l.startswith("stopped by signal 15 after step")]
        if check(len(stop) == 1, f"says where it stopped: {out[-500:]}"):
            s = int(stop[0].split()[6].rstrip(";"))
            ckpt = p(f"ckS/ckpt-{s:08d}.h5")
            v = subprocess.run([RINGTRAIN, "ckpt", "verify", ckpt], capture_output=True, text=True)
            check(v.returncode == 0 and f"step {s}" in v.stdout, f"final checkpoint verifies: {v.stdout}{v.stderr}")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
