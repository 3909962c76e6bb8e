#!/usr/bin/env python3
"""test_ckpt_async.py - asynchronous checkpoints (`--ckpt-write async`, the
default) against synchronous ones, end to end (np=1 unless said; mlp:32,48,10
with AdamW on 512 records, batch 16, a checkpoint every 4 steps):

- the two modes write the same files: ckpt-4, -8, -12 of a sync and an async
  run (same relative paths, so the same config JSON) have the same length,
  every dataset at the same offset with the same bytes, and every attribute
  equal but created_unix and meta_crc32c; the bytes that differ are HDF5's
  object times and metadata checksums (the second of writing), never raw
  data; the final parameters are equal byte for byte (also for arrays of
  18 MB, which go to disk with O_DIRECT: from the async snapshot in place,
  from the sync run's arena through a copy); each checkpoint has a metrics line (step, file,
  ckpt_stall_ms, ckpt_write_ms), the sync ones with the stall at least the
  write time;
- the loop goes on during a write: with every write held back 1.5 s (test
  hook RT_CKPT_TEST_WRITE_DELAY_MS) steps after 4 are logged before
  checkpoint 4 is reported, whose stall is under 1 s while its write took
  1.5 s or more; at most one write is in flight and the end waits for the
  last: the run takes at least 3 x 1.5 s, says "checkpoint ... (step 12)"
  before "done", and ckpt-4, -8, -12 verify;
- resume from an asynchronous checkpoint is exact: the async run's ckpt-8,
  resumed to step 12, ends with the straight run's parameters byte for byte;
- kill -9 during an asynchronous write (test hook RT_CKPT_TEST_PAUSE_AFTER:
  the writer stops after 3 datasets): the run is seen to train on past the
  checkpoint while the write is paused, and after the kill the checkpoint
  before it (step 4) is still the newest that verifies, with no ckpt-8 but
  its temporary file; --resume auto takes step 4 and ends with the straight
  run's parameters;
- a write that fails (np=2; the checkpoint directory replaced by a regular
  file while the write waits to start): the job stops with exit 1 at the
  first step after the write ended, rank 0 naming itself, the step and the
  file; no checkpoint or temporary file is left; a failure of the final
  write (np=1) is reported too;
- SIGTERM while a write is in flight: exit 143 after a final checkpoint, and
  both that one and the one in flight verify;
- the writer thread (found by its name, rt-ckpt-write, in /proc) runs under
  SCHED_IDLE, silently, with its disk requests best-effort (where ionice is
  installed); with SCHED_IDLE refused (test hook RT_CKPT_TEST_NO_SCHED_IDLE)
  it runs at nice 10 and one line says so."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402
from rt_testlib import write_dataset  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check = checker.check


def train(args, expect_rc=0, env=None, cwd=None):
    cmd = [RINGTRAIN, "train"] + [str(a) for a in args]
    t0 = time.monotonic()
    r = rt_testlib.run(cmd, timeout=120, env=env or {}, cwd=cwd)
    r.seconds = time.monotonic() - t0
    if expect_rc is not None and r.returncode != expect_rc:
        check(False, f"exit {r.returncode} != {expect_rc}: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def verifies(path):
    v = subprocess.run([RINGTRAIN, "ckpt", "verify", path], capture_output=True, text=True)
    return v.returncode == 0


def ckpt(d, step):
    return os.path.join(d, f"ckpt-{step:08d}.h5")


def metrics_ckpt_lines(path):
    import json
    with open(path) as f:
        return [r for r in (json.loads(line) for line in f) if "checkpoint" in r]


def h5_items(path):
    """Every dataset's bytes and every attribute, by path."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out["d:" + name] = obj[()].tobytes() if obj.shape != () else np.array(obj[()]).tobytes()
            for k, v in obj.attrs.items():
                out[f"a:{name}@{k}"] = np.array(v).tobytes() if not isinstance(v, str) else v
        for k, v in f.attrs.items():
            out[f"a:/@{k}"] = np.array(v).tobytes() if not isinstance(v, str) else v
        f.visititems(visit)
    return out


def raw_ranges(path):
    """name -> (file offset, bytes) of each dataset's raw data."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.id.get_offset(), obj.id.get_storage_size())
        f.visititems(visit)
    return out


def same_file(a, b, what):
    """The same file but for the time of writing: HDF5 stamps every object
    header with it (and checksums its metadata blocks over that), and the
    root attribute created_unix holds it. So: the same length, every dataset
    at the same offset with the same bytes, every other attribute equal
    (h5py), and every differing byte outside the datasets' raw data."""
    ba, bb = open(a, "rb").read(), open(b, "rb").read()
    if not check(len(ba) == len(bb), f"{what}: same length ({len(ba)} vs {len(bb)})"):
        return
    ra, rb = raw_ranges(a), raw_ranges(b)
    check(ra == rb, f"{what}: every dataset at the same offset")
    diff = np.nonzero(np.frombuffer(ba, np.uint8) != np.frombuffer(bb, np.uint8))[0]
    in_raw = sum(int(((diff >= off) & (diff < off + size)).sum()) for off, size in ra.values() if off is not None)
    check(in_raw == 0, f"{what}: the raw data are identical "
          f"({len(diff)} bytes of metadata differ: object times and checksums)")
    ia, ib = h5_items(a), h5_items(b)
    for k in ("a:/@created_unix", "a:/@meta_crc32c"):
        ia.pop(k, None), ib.pop(k, None)
    check(ia == ib, f"{what}: datasets and attributes equal: {sorted(k for k in ia if ia.get(k) != ib.get(k))}")


def params_bytes(path):
    with h5py.File(path, "r") as f:
        return {k: f["params"][k][()].tobytes() for k in f["params"]}


def main():
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        x, _, y = rt_testlib.learnable_data(rng, 512, 32, 10)
        data = write_dataset(p("d.h5"), x, y, 10)
        base = ["--model", "mlp:32,48,10", "--data", data, "--batch", 16, "--steps", 12,
                "--optimizer", "adamw", "--lr", 3e-3, "--seed", 3, "--threads", 1, "--log-every", 1,
                "--ckpt-every", 4, "--keep", 0]

        # 1. sync and async write the same files and end alike (each run in
        # its own directory with the same relative names: the config JSON in
        # the files holds them)
        here = ["--ckpt-dir", "ck", "--metrics", "m.jsonl", "--export-params", "p.h5"]
        for sub in ("s", "a"):
            os.mkdir(p(sub))
        rs = train(base + here + ["--ckpt-write", "sync"], cwd=p("s"))
        ra = train(base + here, cwd=p("a"))
        for sub, name in (("s", "S"), ("a", "A")):
            os.rename(p(f"{sub}/ck"), p(name))
            for ext in ("jsonl", "h5"):
                if os.path.exists(p(f"{sub}/{'m' if ext == 'jsonl' else 'p'}.{ext}")):
                    os.rename(p(f"{sub}/{'m' if ext == 'jsonl' else 'p'}.{ext}"), p(f"{name}.{ext}"))
        for step in (4, 8, 12):
            if check(os.path.exists(ckpt(p("S"), step)) and os.path.exists(ckpt(p("A"), step)),
                     f"both runs wrote ckpt-{step}"):
                same_file(ckpt(p("S"), step), ckpt(p("A"), step), f"sync vs async ckpt-{step}")
        if os.path.exists(p("S.h5")) and os.path.exists(p("A.h5")):
            check(params_bytes(p("S.h5")) == params_bytes(p("A.h5")), "sync vs async: final parameters equal")
        check("(step 4) | loop held" in ra.stdout and "(async)" in ra.stdout and "(sync)" in rs.stdout,
              f"stdout names each checkpoint with its stall and mode:\n{ra.stdout}")
        for what, path in (("sync", p("S.jsonl")), ("async", p("A.jsonl"))):
            lines = metrics_ckpt_lines(path) if os.path.exists(path) else []
            check(sorted(r["step"] for r in lines) == [4, 8, 12] and
                  all(r["checkpoint"].endswith(f"ckpt-{r['step']:08d}.h5") and r["ckpt_stall_ms"] >= 0
                      and r["ckpt_write_ms"] > 0 for r in lines),
                  f"{what}: a metrics line per checkpoint with its file, stall and write time: {lines}")
            if what == "sync":
                check(all(r["ckpt_stall_ms"] >= r["ckpt_write_ms"] for r in lines),
                      f"sync: the loop is held for the whole write: {lines}")

        # 1b. the same with arrays large enough for O_DIRECT (fc1.weight
        # and its moments, 18 MB each): async writes them from its
        # page-aligned snapshot without a copy, sync from the live arena
        # through the aligned buffers
        big = [a for a in base]
        big[big.index("--model") + 1] = "mlp:1000,4500,10"
        big[big.index("--data") + 1] = write_dataset(p("big.h5"), *rt_testlib.learnable_data(rng, 64, 1000, 10)[::2], 10)
        big[big.index("--steps") + 1] = 3
        big[big.index("--ckpt-every") + 1] = 2
        for sub in ("bs", "ba"):
            os.mkdir(p(sub))
        train(big + ["--ckpt-dir", "ck", "--ckpt-write", "sync"], cwd=p("bs"))
        train(big + ["--ckpt-dir", "ck"], cwd=p("ba"))
        for step in (2, 3):
            if check(os.path.exists(ckpt(p("bs/ck"), step)) and os.path.exists(ckpt(p("ba/ck"), step)),
                     f"both runs wrote the large ckpt-{step}"):
                same_file(ckpt(p("bs/ck"), step), ckpt(p("ba/ck"), step), f"sync vs async, large ckpt-{step}")
                check(verifies(ckpt(p("ba/ck"), step)), f"the large async ckpt-{step} verifies")
        shutil.rmtree(p("bs")), shutil.rmtree(p("ba"))

        # 2. the loop goes on while a (delayed) write runs; one in flight; the end waits
        delay = {"RT_CKPT_TEST_WRITE_DELAY_MS": "1500"}
        r = train(base + ["--ckpt-dir", p("D"), "--metrics", p("D.jsonl")], env=delay)
        out = r.stdout.splitlines()
        at = lambda pat: next((i for i, l in enumerate(out) if pat in l), None)
        c4, s5, c12, done = at("ckpt-00000004.h5 (step 4)"), at("step 5/12"), at("(step 12)"), at("done ")
        check(None not in (c4, s5) and s5 < c4, f"steps after 4 ran before checkpoint 4 was reported:\n{r.stdout}")
        check(None not in (c12, done) and c12 < done, "the final checkpoint is reported before 'done'")
        check(r.seconds >= 4.5, f"writes one at a time, the end waits: 3 x 1.5 s <= {r.seconds:.1f} s")
        check(all(verifies(ckpt(p("D"), s)) for s in (4, 8, 12)), "ckpt-4, -8, -12 verify")
        lines = {row["step"]: row for row in metrics_ckpt_lines(p("D.jsonl"))} if os.path.exists(p("D.jsonl")) else {}
        c = lines.get(4, {})
        check(c.get("ckpt_write_ms", 0) >= 1500 and c.get("ckpt_stall_ms", 1e9) < 1000,
              f"checkpoint 4: write >= 1.5 s, the loop held < 1 s: {c}")

        # 3. resume from an asynchronous checkpoint is exact
        os.mkdir(p("R"))
        shutil.copy(ckpt(p("A"), 8), p("R"))
        r = train(base + ["--ckpt-dir", p("R"), "--export-params", p("R.h5")])
        check("resumed from " + ckpt(p("R"), 8) in r.stderr, f"resumed from the async ckpt-8: {r.stderr}")
        if os.path.exists(p("R.h5")) and os.path.exists(p("A.h5")):
            check(params_bytes(p("R.h5")) == params_bytes(p("A.h5")),
                  "8 + resume + 4 steps = 12 straight, byte for byte")

        # 4. kill -9 during an asynchronous write
        os.mkdir(p("K"))
        shutil.copy(ckpt(p("A"), 4), p("K"))
        before = open(ckpt(p("K"), 4), "rb").read()
        cmd = [RINGTRAIN, "train"] + [str(a) for a in base + ["--ckpt-dir", p("K")]]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "RT_CKPT_TEST_PAUSE_AFTER": "3"})
        seen, paused, trained, lines_k = threading.Event(), threading.Event(), threading.Event(), []

        def reader():
            for line in proc.stdout:
                lines_k.append(line)
                # the write of step 8 pauses for good: a step after 8 on
                # stdout is the loop going on during that write
                if line.startswith("RT_CKPT_TEST_PAUSED") and ".ckpt-00000008.h5.tmp" in line:
                    paused.set()
                if line.startswith("step 11/12"):
                    trained.set()
                if paused.is_set() and trained.is_set():
                    seen.set()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        went_on = seen.wait(60)
        proc.kill()
        proc.wait(30)
        t.join(10)
        check(went_on, "the loop trained on (step 11) while the write of step 8 was paused:\n" + "".join(lines_k))
        left = sorted(os.listdir(p("K")))
        check("ckpt-00000008.h5" not in left and any(n.startswith(".ckpt-00000008.h5.tmp.") for n in left),
              f"killed mid-write: no ckpt-8, its temporary file left: {left}")
        check(verifies(ckpt(p("K"), 4)) and open(ckpt(p("K"), 4), "rb").read() == before,
              "ckpt-4 untouched and still verifies")
        r = train(base + ["--ckpt-dir", p("K"), "--export-params", p("K.h5")])
        check("resumed from " + ckpt(p("K"), 4) in r.stderr, f"--resume auto takes ckpt-4: {r.stderr}")
        if os.path.exists(p("K.h5")) and os.path.exists(p("A.h5")):
            check(params_bytes(p("K.h5")) == params_bytes(p("A.h5")), "after the kill: the straight run's parameters")

        # 5. a failed write stops the job (np=2), also the final one (np=1):
        # each write starts 3 s late, and meanwhile the test puts a regular
        # file where the checkpoint directory was (the lock goes with the
        # directory), so the write fails for real
        def fail_run(args, np_, when, what):
            d_ = p(what)
            cmd = rt_testlib.mpi_cmd(np_, [RINGTRAIN, "train"] + [str(a) for a in args + ["--ckpt-dir", d_]])
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "RT_CKPT_TEST_WRITE_DELAY_MS": "3000"})
            for line in proc.stdout:
                if line.startswith(when):
                    os.rename(d_, d_ + ".moved")
                    open(d_, "w").close()
                    break
            out, err = proc.communicate(timeout=60)
            return proc.returncode, out, err, sorted(os.listdir(d_ + ".moved")) if os.path.isdir(d_ + ".moved") else None
        long = [a for a in base]
        long[long.index("--steps") + 1] = 400
        rc, out, err, left = fail_run(long, 2, "step 5/", "F")
        check(rc == 1 and "rank 0: checkpoint at step 4" in err and ckpt(p("F"), 4) in err
              and "not a directory" in err,
              f"a failed async write: exit 1, rank 0 names the step and the file: {rc}\n{err}")
        check("done " not in out and "step 400/400" not in out, "the job stopped early")
        check(left == [".lock"], f"no checkpoint or temporary file left: {left}")
        short = [a for a in base]
        short[short.index("--ckpt-every") + 1] = 0
        rc, out, err, left = fail_run(short, 0, "step 12/12", "G")
        check(rc == 1 and "rank 0: checkpoint at step 12" in err and "done " not in out,
              f"a failed final write: exit 1 naming step 12: {rc}\n{out}\n{err}")

        # 6. SIGTERM while a write is in flight
        forever = [a for a in base]
        forever[forever.index("--steps") + 1] = 10**6
        forever[forever.index("--ckpt-every") + 1] = 2
        proc = subprocess.Popen([RINGTRAIN, "train"] + [str(a) for a in forever + ["--ckpt-dir", p("T")]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "RT_CKPT_TEST_WRITE_DELAY_MS": "1000"})
        first = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            first = proc.stdout.readline()
            if first.startswith("step 3/") or not first:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        check(proc.returncode == 143, f"SIGTERM: exit 143 (got {proc.returncode}) {err}")
        stop = re.search(r"stopped by signal 15 after step (\d+); final checkpoint written", out)
        if check(stop is not None, f"says where it stopped: {out[-400:]}"):
            s = int(stop.group(1))
            check(s >= 3 and verifies(ckpt(p("T"), 2)) and verifies(ckpt(p("T"), s)),
                  f"the write in flight (step 2) and the final one (step {s}) verify")

        # 7. the writer's priority, as the kernel records it
        for hook, want in (({}, "SCHED_IDLE"), ({"RT_CKPT_TEST_NO_SCHED_IDLE": "1"}, "nice 10")):
            got, err = writer_priority(base + ["--ckpt-dir", p("P" + str(len(hook)))], hook)
            if want == "SCHED_IDLE":
                check(got and got["policy"] == SCHED_IDLE,
                      f"the writer thread runs under SCHED_IDLE (policy {SCHED_IDLE}): {got}\n{err}")
                check("SCHED_IDLE refused" not in err, f"nothing said when SCHED_IDLE is taken: {err}")
            else:
                check(got and got["policy"] == 0 and got["nice"] == 10,
                      f"SCHED_IDLE refused: the writer thread at nice 10: {got}\n{err}")
                check(err.count("checkpoint writer thread at nice 10 (SCHED_IDLE refused") == 1,
                      f"one line says so: {err}")
            if got and got.get("ioclass") is not None:
                check(got["ioclass"].startswith("best-effort"),
                      f"its disk requests stay best-effort (not idle class): {got}")
    return checker.summary()


SCHED_IDLE = 5  # sched.h


def writer_priority(args, env):
    """Runs a training whose first write waits 3 s (test hook), finds its
    writer thread by name in /proc meanwhile and reads its scheduling
    policy and nice value (/proc/PID/task/TID/stat fields 41 and 19) and,
    where ionice is installed, its I/O class. Returns ({policy, nice,
    ioclass}, stderr), or (None, stderr) when the thread was not seen."""
    more = [a for a in args]
    more[more.index("--steps") + 1] = 8
    proc = subprocess.Popen([RINGTRAIN, "train"] + [str(a) for a in more], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env, "RT_CKPT_TEST_WRITE_DELAY_MS": "3000"})
    got = None
    deadline = time.monotonic() + 60
    while got is None and proc.poll() is None and time.monotonic() < deadline:
        tasks = os.path.join("/proc", str(proc.pid), "task")
        for tid in (os.listdir(tasks) if os.path.isdir(tasks) else []):
            try:
                with open(os.path.join(tasks, tid, "comm")) as f:
                    if f.read().strip() != "rt-ckpt-write":
                        continue
                with open(os.path.join(tasks, tid, "stat")) as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # fields from 3 on
            except OSError:
                continue  # the thread ended meanwhile
            got = {"policy": int(fields[41 - 3]), "nice": int(fields[19 - 3]), "ioclass": None}
            if shutil.which("ionice"):
                r = subprocess.run(["ionice", "-p", tid], capture_output=True, text=True)
                got["ioclass"] = r.stdout.strip() if r.returncode == 0 else None
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    check(proc.returncode == 0, f"the run ends well: {proc.returncode}\n{err}")
    return got, err


if __name__ == "__main__":
    sys.exit(main())
