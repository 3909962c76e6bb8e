#!/usr/bin/python3
"""ckpt_bench.py - checkpoint write and read speed against the disk's own
sequential speed, measured with dd in the same run (docs/PERFORMANCE.md,
"Checkpoints").

  bench/ckpt_bench.py BUILD_DIR [--dir D] [--rounds N] [--hidden H] [--page-cache]

Writes a checkpoint of an MLP 1000 -> H -> 10 (H = 100000: 100.1 M
parameters) with AdamW moments m and v (3 x 400 MB = 1.2 GB) through
tests/ckpt/ckpt_driver, and 1200 MiB with
`dd if=/dev/zero bs=1M count=1200 conv=fsync`, alternating (and swapping
which goes first), N rounds, with `sync` and a 2 s pause before each write.
Both writes include fsync. Before each read the file's pages are dropped
from the page cache (posix_fadvise DONTNEED after fsync), so reads come from
the disk: dd reads with bs=1M, the checkpoint is opened, every array read
and its CRC-32C checked (ckpt_driver load; the closed-form value check
afterwards is not timed). Files are removed at the end. --page-cache:
the checkpoint's large arrays go through the page cache instead of
O_DIRECT (RT_CKPT_TEST_NO_DIRECT=1), the writer before 2026-12-01."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--dir", default="/tmp/ckpt_bench.%d" % os.getpid())
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--hidden", type=int, default=100000)
ap.add_argument("--page-cache", action="store_true")
a = ap.parse_args()
if a.page_cache:
    os.environ["RT_CKPT_TEST_NO_DIRECT"] = "1"
driver = os.path.join(a.build, "tests/ckpt/ckpt_driver")
shape = ["--in", "1000", "--hidden", str(a.hidden), "--out", "10"]
need = 2 * 3 * 4 * (1000 * a.hidden + 11 * a.hidden) + (1 << 30)
os.makedirs(a.dir, exist_ok=True)
free = shutil.disk_usage(a.dir).free
if free < need:
    sys.exit("ckpt_bench: %s has %.1f GB free, needs %.1f GB" % (a.dir, free / 1e9, need / 1e9))


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit("ckpt_bench: %s failed: %s" % (" ".join(cmd), r.stderr))
    return t, r.stdout


rows = []
try:
    ddfile = os.path.join(a.dir, "dd.bin")
    ckdir = os.path.join(a.dir, "ck")
    def settle():
        # Deleting 1.2 GB on a discard-mounted disk and leftover writeback
        # would otherwise land inside the next timed write.
        subprocess.run(["sync"])
        time.sleep(2)

    def dd_round():
        if os.path.exists(ddfile):
            os.unlink(ddfile)
        settle()
        t, _ = timed(["dd", "if=/dev/zero", "of=" + ddfile, "bs=1M", "count=1200", "conv=fsync"])
        w = 1200 * 2**20 / t
        evict(ddfile)
        t, _ = timed(["dd", "if=" + ddfile, "of=/dev/null", "bs=1M"])
        r = 1200 * 2**20 / t
        os.unlink(ddfile)
        return w, r

    def ckpt_round(rnd):
        shutil.rmtree(ckdir, ignore_errors=True)
        settle()
        _, out = timed([driver, "write", ckdir, str(rnd + 1)] + shape)
        m = re.search(r"wrote (\S+) bytes (\d+) seconds ([\d.]+)", out)
        path, size, tw = m.group(1), int(m.group(2)), float(m.group(3))
        evict(path)
        t, _ = timed(["dd", "if=" + path, "of=/dev/null", "bs=1M"])
        dd_ck_r = size / t
        evict(path)
        _, out = timed([driver, "load", path] + shape)
        tr = float(re.search(r"seconds ([\d.]+)", out).group(1))
        evict(path)
        _, out = timed([driver, "verify", path])
        tv = float(re.search(r"seconds ([\d.]+)", out).group(1))
        shutil.rmtree(ckdir, ignore_errors=True)
        return size, size / tw, size / tr, size / tv, dd_ck_r

    for rnd in range(a.rounds):
        if rnd % 2 == 0:  # alternate the order, so neither always goes first
            dd_w, dd_r = dd_round()
            size, ck_w, ck_r, ck_v, dd_ck = ckpt_round(rnd)
        else:
            size, ck_w, ck_r, ck_v, dd_ck = ckpt_round(rnd)
            dd_w, dd_r = dd_round()
        rows.append((dd_w, ck_w, dd_r, ck_r, ck_v, dd_ck))
        print("round %d: file %.3f GB | write dd %.0f MB/s ckpt %.0f MB/s (%.2f x) | "
              "read dd %.0f MB/s ckpt load %.0f MB/s (%.2f x) verify %.0f MB/s, dd of the ckpt file %.0f MB/s" % (
                  rnd + 1, size / 1e9, dd_w / 1e6, ck_w / 1e6, ck_w / dd_w, dd_r / 1e6, ck_r / 1e6, ck_r / dd_r,
                  ck_v / 1e6, dd_ck / 1e6), flush=True)
finally:
    shutil.rmtree(a.dir, ignore_errors=True)

med = [statistics.median(c) for c in zip(*rows)]
ratios_w = statistics.median(r[1] / r[0] for r in rows)
ratios_r = statistics.median(r[3] / r[2] for r in rows)
print("median: write dd %.0f MB/s ckpt %.0f MB/s | read dd %.0f MB/s ckpt load %.0f MB/s | verify %.0f MB/s | "
      "dd of the ckpt file %.0f MB/s" % (med[0] / 1e6, med[1] / 1e6, med[2] / 1e6, med[3] / 1e6, med[4] / 1e6,
                                         med[5] / 1e6))
print("median of per-round ratios: write %.2f x dd, read %.2f x dd" % (ratios_w, ratios_r))
