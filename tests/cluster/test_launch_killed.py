#!/usr/bin/env python3
"""test_launch_killed.py - `kill -9` of `ringtrain launch` takes its job
down: mpirun (which dies with its parent launcher) and every rank are gone
within 15 s, and the checkpoint directory's lock is free, so a new job on
the same --ckpt-dir starts and finishes. And `kill -9` of mpirun leaves no
rank behind either (Open MPI's ranks exit when their daemon is gone).

The job (np=2, a small MLP, endless --steps) runs in a temporary directory
of its own; its processes are found by that directory's path in their
command line (/proc/PID/cmdline), never by name, and whatever is left is
killed by pid at the end, also when the test fails."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402


def job_pids(tag):
    """Live processes (not zombies) whose command line holds tag."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag in cmd and state != "Z":
            pids.append((int(name), cmd[:120]))
    return pids


def main():
    e.require_train_flags("--ckpt-dir", "--ckpt-every", "--resume", "--threads")
    d = tempfile.mkdtemp(prefix="rt_launch_killed.")
    launcher = None
    try:
        p = lambda n: os.path.join(d, n)
        spec = e.write_dataset(p("train.h5"))
        ck = p("ck")
        train = ["train", "--model", spec, "--data", p("train.h5"), "--batch", 16, "--threads", 1,
                 "--ckpt-dir", ck, "--ckpt-every", 50, "--log-every", 1000]
        log = open(p("launcher.log"), "w")
        launcher = subprocess.Popen([e.RINGTRAIN, "launch", "-np", "2", "--oversubscribe", "--",
                                     *map(str, train), "--steps", "100000000"], stdout=log, stderr=log)
        for _ in range(600):  # the job trains: its first checkpoint is there
            if os.path.isdir(ck) and any(n.startswith("ckpt-") for n in os.listdir(ck)):
                break
            if launcher.poll() is not None:
                break
            time.sleep(0.1)
        running = job_pids(d)
        e.check(launcher.poll() is None and len(running) >= 4,
                f"the job runs: launcher, mpirun and 2 ranks ({len(running)} processes)") or \
            print(open(p("launcher.log")).read()[-3000:])

        t0 = time.monotonic()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        left = job_pids(d)
        while left and time.monotonic() - t0 < 15:
            time.sleep(0.2)
            left = job_pids(d)
        took = time.monotonic() - t0
        e.check(not left, f"15 s after kill -9 of the launcher no process of the job is left "
                f"({took:.1f} s): {left}")

        again = e.Run(["-np", 2, "--oversubscribe", "--", *train, "--resume", "never", "--steps", 5],
                      timeout=120)
        e.check(again.rc == 0 and "is in use by" not in again.stderr,
                f"a new job on the same --ckpt-dir starts and finishes (exit {again.rc})") or again.dump()

        # kill -9 of mpirun itself: Open MPI's ranks notice their daemon is
        # gone and exit; the launcher reports the failure
        launcher = subprocess.Popen([e.RINGTRAIN, "launch", "-np", "2", "--oversubscribe", "--",
                                     *map(str, train), "--steps", "100000000"], stdout=log, stderr=log)
        mpirun = []
        for _ in range(600):
            mpirun = [pid for pid, cmd in job_pids(d) if cmd.startswith("mpirun ")]
            ranks = [pid for pid, cmd in job_pids(d) if " train " in cmd and not cmd.startswith("mpirun ")
                     and " launch " not in cmd]
            if (mpirun and len(ranks) >= 2) or launcher.poll() is not None:
                break
            time.sleep(0.1)
        if e.check(len(mpirun) == 1, f"mpirun found: {mpirun}"):
            t0 = time.monotonic()
            os.kill(mpirun[0], signal.SIGKILL)
            try:
                rc = launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                rc = None
            left = job_pids(d)
            while left and time.monotonic() - t0 < 15:
                time.sleep(0.2)
                left = job_pids(d)
            e.check(rc == 1, f"kill -9 of mpirun: the launcher reports a failed job (exit {rc})")
            e.check(not left, f"kill -9 of mpirun: no rank left after {time.monotonic() - t0:.1f} s: {left}")
    finally:
        if launcher and launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid, _ in job_pids(d):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(d, ignore_errors=True)
    e.finish()


if __name__ == "__main__":
    main()
