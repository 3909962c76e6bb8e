#!/usr/bin/env python3
"""`ringtrain bench allreduce --backend nccl` at np=1 on a GPU (Python
standard library only): our device ring and ncclAllReduce on device buffers,
4 KiB .. 64 MiB, 5 iterations, --json. Every row must be a device row with
both backends timed and #wrong == 0 (the bench compares every timed result
with the exact closed form of its integer-valued inputs), sizes doubling
with nothing missing. Exits 77 (skipped) when no CUDA device is visible."""
import json, os, subprocess, sys

RINGTRAIN = os.environ["RINGTRAIN"]
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")

cmd = [MPIEXEC, "-np", "1", "--oversubscribe", RINGTRAIN, "bench", "allreduce", "--backend", "nccl",
       "--min", "4K", "--max", "64M", "--iters", "5", "--json"]
p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                   timeout=150)
if p.returncode != 0 and "no CUDA device is visible" in p.stderr:
    why = [l for l in p.stderr.splitlines() if "no CUDA device is visible" in l][0]
    print("SKIP: no CUDA device (" + why.strip() + ")")
    sys.exit(77)
print(p.stdout, end="")
if p.returncode != 0:
    print("FAIL bench exit %d: %s" % (p.returncode, p.stderr.strip()[-2000:]))
    sys.exit(1)
# only the JSON rows: NCCL_DEBUG=WARN lines, if any, also go to stdout
rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
want = [4096 << k for k in range(15)]  # 4 KiB .. 64 MiB
failures = []
if [r.get("size") for r in rows] != want:
    failures.append("sizes %s, want %s" % ([r.get("size") for r in rows], want))
for r in rows:
    if r.get("buffers") != "device" or r.get("np") != 1 or r.get("count") != r.get("size", 0) // 4:
        failures.append("bad row %s" % r)
        continue
    for b in ("ring", "nccl"):
        if r[b]["wrong"] != 0 or not r[b]["time_us"] > 0:
            failures.append("size %d %s: wrong=%d time_us=%s" % (r["size"], b, r[b]["wrong"], r[b]["time_us"]))
big = rows[-1] if rows else None
for f in failures:
    print("FAIL " + f)
if big:
    print("bench nccl np=1: %d rows, #wrong 0 in all: %s; %d B: ring %.1f us, nccl %.1f us" %
          (len(rows), "yes" if not failures else "no", big["size"], big["ring"]["time_us"],
           big["nccl"]["time_us"]))
sys.exit(1 if failures else 0)
