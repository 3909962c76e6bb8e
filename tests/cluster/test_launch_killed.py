#!/usr/bin/env python3
"""test_launch_killed.py - `kill -9` of `ringtrain launch` takes its job
down: mpirun (which dies with its parent launcher) and every rank are gone
within 15 s, and the checkpoint directory's lock is free, so a new job on
the same --ckpt-dir starts and finishes. And `kill -9` of mpirun leaves no
rank behind either: the launcher, their subreaper, kills the ranks that
outlive mpirun before it exits (docs/LAUNCH.md, "Signals").

The job (np=2, a small MLP, endless --steps) runs in a temporary directory
of its own; its processes are found by that directory's path in their
command line (/proc/PID/cmdline) or by the session the launcher was started
in, never by name (a leftover is reported with its state and kernel wait
channel), and whatever is left is killed by pid at the end, also when the
test fails."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402


def job_pids(tag, sid=None):
    """Live processes (not zombies) whose command line holds tag, or that are
    in session sid (found by it also while an exec hides their command
    line), each with its state and kernel wait channel for the report."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/wchan") as f:
                wchan = f.read()
        except OSError:
            continue
        if fields[0] != "Z" and (tag in cmd or (sid is not None and int(fields[3]) == sid)):
            pids.append((int(name), f"{cmd[:120]} [state {fields[0]}, wchan {wchan or '-'}]"))
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
                                     *map(str, train), "--steps", "100000000"], stdout=log, stderr=log,
                                    start_new_session=True)
        sid = launcher.pid
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
        left = job_pids(d, sid)
        while left and time.monotonic() - t0 < 15:
            time.sleep(0.2)
            left = job_pids(d, sid)
        took = time.monotonic() - t0
        e.check(not left, f"15 s after kill -9 of the launcher no process of the job is left "
                f"({took:.1f} s): {left}")

        again = e.Run(["-np", 2, "--oversubscribe", "--", *train, "--resume", "never", "--steps", 5],
                      timeout=120)
        e.check(again.rc == 0 and "is in use by" not in again.stderr,
                f"a new job on the same --ckpt-dir starts and finishes (exit {again.rc})") or again.dump()

        # kill -9 of mpirun itself: its ranks become the launcher's children
        # (it is their subreaper), and it kills them before it reports the
        # failure and exits, so none is left once it has exited. (Open MPI's
        # ranks would exit by themselves 1 s after their daemon's socket
        # closes, measured with 4.1.4; later on a loaded machine, or before
        # they have connected.)
        launcher = subprocess.Popen([e.RINGTRAIN, "launch", "-np", "2", "--oversubscribe", "--",
                                     *map(str, train), "--steps", "100000000"], stdout=log, stderr=log,
                                    start_new_session=True)
        sid = launcher.pid
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
            took = time.monotonic() - t0
            left = job_pids(d, sid)
            e.check(rc == 1, f"kill -9 of mpirun: the launcher reports a failed job (exit {rc}, "
                    f"{took:.1f} s after the kill)")
            e.check(not left, f"kill -9 of mpirun: no rank left when the launcher has exited: {left}")
            log.flush()
            with open(p("launcher.log")) as f:
                said = [l.strip() for l in f if "outlived mpirun" in l]
            print("launcher:", said[-1] if said else "no process outlived mpirun")
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
