#!/usr/bin/python3
"""ckpt_stall.py - how long a checkpoint holds up the step loop, with
`--ckpt-write sync` and `--ckpt-write async`, for a 100 M-parameter model
with AdamW moments (docs/PERFORMANCE.md, "Checkpoint stall").

  bench/ckpt_stall.py BUILD_DIR [--dir D] [--rounds N] [--hidden H] [--batch B]

Trains mlp:1000,H,10 (H = 100000: 100.1 M parameters; with m and v the
checkpoint is 1.2 GB) for 8 steps on 512 random uint8 records, one rank,
`--log-every 1`, a checkpoint after step 4 and the final one after step 8,
once with each mode per round (the order swapped every round, `sync` and a
2 s pause before each run). Each step's time is read back from its metrics
line (global batch / samples_per_s: the time from the previous step's line
to this one's, so step 5's holds the checkpoint of step 4). Per run:

  normal   the median of steps 2..4 (step 1 warms up)
  stall    step 5 - normal: what the checkpoint cost the step loop
  after    steps 6..8 - 3 x normal: what the write going on beside the
           steps cost them (async; 0 when it does not interfere)
  write    the checkpoint line's ckpt_write_ms (the write, fsyncs and
           pruning) and ckpt_stall_ms (the loop's own account of its stall)

The figure of merit is median(async stall) / median(sync write): the
fraction of the synchronous write time the asynchronous checkpoint still
costs the loop (target: under 0.2)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--dir", default="/tmp/ckpt_stall.%d" % os.getpid())
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--hidden", type=int, default=100000)
ap.add_argument("--batch", type=int, default=32)
a = ap.parse_args()
ringtrain = os.path.join(a.build, "launch/ringtrain")
os.makedirs(a.dir, exist_ok=True)
need = 3 * 2 * 4 * (1000 * a.hidden + 11 * a.hidden) + (1 << 30)
free = shutil.disk_usage(a.dir).free
if free < need:
    sys.exit("ckpt_stall: %s has %.1f GB free, needs %.1f GB" % (a.dir, free / 1e9, need / 1e9))

try:
    import h5py
    import numpy as np
except ImportError as e:
    sys.exit("ckpt_stall: needs h5py and numpy (%s)" % e)

data = os.path.join(a.dir, "d.h5")
rng = np.random.default_rng(0)
with h5py.File(data, "w") as f:
    f.attrs["format"] = "ringtrain-dataset"
    f.attrs["format_version"] = 1
    f.attrs["kind"] = "classification"
    f.attrs["num_classes"] = 10
    f["inputs"] = rng.integers(0, 256, (512, 1000), dtype=np.uint8)
    f["labels"] = rng.integers(0, 10, 512, dtype=np.uint8)


def run(mode):
    ck, metrics = os.path.join(a.dir, "ck"), os.path.join(a.dir, "m.jsonl")
    shutil.rmtree(ck, ignore_errors=True)
    subprocess.run(["sync"])
    time.sleep(2)
    cmd = [ringtrain, "train", "--model", "mlp:1000,%d,10" % a.hidden, "--data", data,
           "--batch", str(a.batch), "--steps", "8", "--ckpt-every", "4", "--keep", "0",
           "--log-every", "1", "--resume", "never", "--ckpt-dir", ck, "--ckpt-write", mode,
           "--metrics", metrics]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("ckpt_stall: %s failed:\n%s" % (" ".join(cmd), r.stderr))
    with open(metrics) as f:
        rows = [json.loads(line) for line in f]
    shutil.rmtree(ck, ignore_errors=True)
    t = {row["step"]: a.batch / row["samples_per_s"] for row in rows if "samples_per_s" in row}
    c = next(row for row in rows if row.get("checkpoint") and row["step"] == 4)
    normal = statistics.median([t[2], t[3], t[4]])
    return {"normal": normal, "stall": t[5] - normal, "after": sum(t[s] for s in (6, 7, 8)) - 3 * normal,
            "write": c["ckpt_write_ms"] / 1e3, "own_stall": c["ckpt_stall_ms"] / 1e3}


res = {"sync": [], "async": []}
print("round mode   normal  stall  after  write  (own stall)   [seconds]")
for rnd in range(a.rounds):
    for mode in (("sync", "async") if rnd % 2 == 0 else ("async", "sync")):
        m = run(mode)
        res[mode].append(m)
        print("%5d %-6s %6.2f %6.2f %6.2f %6.2f  (%.2f)   load %.1f" % (
            rnd + 1, mode, m["normal"], m["stall"], m["after"], m["write"], m["own_stall"],
            os.getloadavg()[0]), flush=True)
med = {mode: {k: statistics.median(m[k] for m in res[mode]) for k in res[mode][0]} for mode in res}
print("medians of %d rounds:" % a.rounds)
for mode in ("sync", "async"):
    print("  %-6s normal step %.2f s | stall %.2f s | after %.2f s | write %.2f s | own stall %.2f s" % (
        mode, med[mode]["normal"], med[mode]["stall"], med[mode]["after"], med[mode]["write"],
        med[mode]["own_stall"]))
ratios = [x["stall"] / y["write"] for x, y in zip(res["async"], res["sync"])]
print("async stall / sync write: %.3f (medians); per round %s" % (
    med["async"]["stall"] / med["sync"]["write"], " ".join("%.3f" % r for r in ratios)))
shutil.rmtree(a.dir, ignore_errors=True)
