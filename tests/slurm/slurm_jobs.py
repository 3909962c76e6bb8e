#!/usr/bin/env python3
"""slurm_jobs.py ID SCRATCH - the jobs of test_slurm.sh, on the Slurm test
cluster ID that it started (cluster/slurm/slurm-up.sh 2 ID: nodes rt<ID>-h1
and rt<ID>-h2). Each job is cluster/slurm/ringtrain.sbatch itself, submitted
with sbatch as a user would (2 nodes x 2 tasks, CPU nodes: --gpus-per-node=0,
the training chosen with TRAIN_ARGS), and every job's final parameters must
equal, byte for byte, those of the same training run by `ringtrain launch
-np 4` (mpirun) on this host without Slurm (the oracle):
  1. a plain job: ranks on both nodes, exit 0;
  2. pre-emption: `scancel --batch --signal=TERM` (what --signal=B:TERM@120
     delivers) mid-run: the ranks write a final checkpoint and stop, the
     script requeues the job, the requeued run resumes from that checkpoint;
  3. a node failure: every process of node 2 (slurmd, its job step, the
     ranks) killed mid-run: the job ends naming rt<ID>-h2, nothing of it is
     left running, and a resubmission (node 2 back) resumes from the newest
     checkpoint.
The jobs run with Open MPI's defaults (the test's OMPI_MCA_* variables are
not passed on), as a user's job would."""
import glob
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import e2e_common as e  # noqa: E402

STEPS = 1000
EVERY = 50


class Cluster:
    def __init__(self, cid, scratch):
        self.id = cid
        self.dir = f"/run/ringtrain-slurm-rt{cid}"
        self.scratch = scratch
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_MCA_")}
        self.env["SLURM_CONF"] = os.path.join(self.dir, "slurm.conf")
        self.node = lambda n: f"rt{cid}-h{n}"
        self.tmp = os.path.join(scratch, "tmp")
        os.makedirs(self.tmp, exist_ok=True)

    def cmd(self, *args, check=True, timeout=30):
        r = subprocess.run([str(a) for a in args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def job(self, jid):
        """scontrol's view of job jid as a dict (JobState, Restarts, ExitCode...)."""
        out = self.cmd("scontrol", "show", "job", "-o", jid, check=False)
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait(self, what, cond, timeout):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return True
            time.sleep(0.2)
        e.check(False, f"{what} within {timeout} s")
        return False

    def wait_done(self, jid, timeout=150):
        self.wait(f"job {jid} ends", lambda: not self.cmd("squeue", "-h", "-j", jid, "-o", "%T",
                                                           check=False).strip(), timeout)
        return self.job(jid)

    def logs(self, jid):
        """What slurmctld and the slurmds logged about job jid (for a failure)."""
        for f in sorted(glob.glob(os.path.join(self.dir, "log", "slurm*.log"))):
            lines = [l for l in read(f).splitlines()
                     if re.search(rf"(JobId={jid}\b|job {jid}\b|\[{jid}\.|JOB {jid}\b)", l)]
            print(f"--- {os.path.basename(f)}, job {jid}:\n" + "\n".join(lines[-15:]))

    def submit(self, name, ckpt, export, train, *sbatch_args, step_sleep_ms=0):
        out = os.path.join(self.scratch, f"{name}-%j.out")
        # TMPDIR: the script's hostfile goes there, and must not stay (Open
        # MPI's session directories go there too)
        env = dict(self.env, RINGTRAIN=e.RINGTRAIN, CKPT_DIR=ckpt, GRACE="1", CKPT_EVERY=str(EVERY),
                   TMPDIR=self.tmp,
                   TRAIN_ARGS=" ".join(map(str, train + ["--export-params", export])))
        if step_sleep_ms:
            # the launcher forwards RT_* to every rank: each sleeps before
            # each step, so the job outlasts what the test does to it
            env["RT_TEST_STEP_SLEEP_MS"] = str(step_sleep_ms)
        r = subprocess.run(["sbatch", "--parsable", "--ntasks-per-node=2", "--cpus-per-task=1",
                            "--gpus-per-node=0", f"--output={out}", *sbatch_args,
                            os.path.join(e.SRC, "cluster", "slurm", "ringtrain.sbatch")],
                           env=env, capture_output=True, text=True, timeout=30, cwd=self.scratch)
        if r.returncode != 0:
            raise RuntimeError(f"sbatch: exit {r.returncode}: {r.stderr.strip()}")
        jid = r.stdout.strip().split(";")[0]
        return jid, out.replace("%j", jid)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def ckpts(d):
    return sorted(glob.glob(os.path.join(d, "ckpt-*.h5")))


def lingering(path):
    """Processes anywhere whose command line contains path (launcher, mpirun,
    ranks of a job using that checkpoint directory)."""
    left = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if path.encode() in f.read():
                        left.append(p)
            except OSError:
                pass
    return left


def ns_pids(host):
    r = subprocess.run(["ip", "netns", "pids", host], capture_output=True, text=True)
    return r.stdout.split()


def comm(pid):
    return read(f"/proc/{pid}/comm").strip()


def wait_ckpt(c, ckpt, jid):
    # any checkpoint: --keep 3 prunes the first within a few steps
    if c.wait(f"job {jid} writes a checkpoint into {ckpt}", lambda: ckpts(ckpt), 90):
        return True
    # what Slurm made of the job, for the reader of a failed run
    info = c.job(jid)
    print(f"job {jid}: state {info.get('JobState')}, reason {info.get('Reason')}, "
          f"nodes {info.get('NodeList')}, restarts {info.get('Restarts')}")
    print(c.cmd("sinfo", "-N", check=False))
    c.logs(jid)
    return False


def plain(c, p, train, ref):
    jid, out = c.submit("plain", p("ck_plain"), p("plain.h5"), train)
    info = c.wait_done(jid)
    log = read(out)
    ok = e.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                 f"plain job {jid}: COMPLETED, exit 0:0 (got {info.get('JobState')}, {info.get('ExitCode')})")
    for n in (1, 2):
        ok &= e.check(re.search(rf"\[r\d/4 {c.node(n)}\]", log) is not None,
                      f"plain job: ranks ran on node {c.node(n)}")
    ok or print(log[-4000:]) or c.logs(jid)
    e.same_bytes(p("plain.h5"), ref, "sbatch 2 nodes x 2 tasks vs mpirun -np 4 on one host")


def preempt(c, p, train, ref):
    ckpt = p("ck_term")
    # 1000 steps of 5 ms at least: unslowed, the job can end (2 s) before
    # the test has seen its first checkpoint and sent TERM
    jid, out = c.submit("term", ckpt, p("term.h5"), train, step_sleep_ms=5)
    if not wait_ckpt(c, ckpt, jid):
        print(read(out)[-4000:])
        return
    t0 = time.monotonic()
    c.cmd("scancel", "--batch", "--signal=TERM", jid)
    # The script requeues the job itself.
    c.wait(f"job {jid} requeued (PENDING, Restarts=1)",
           lambda: (lambda j: j.get("JobState") == "PENDING" and j.get("Restarts") == "1")(c.job(jid)),
           60)
    # Slurm holds a requeued batch job back (BeginTime, 2 min in 22.05)
    # while the nodes finish the previous run; the test waits for that end
    # itself (both nodes idle) and then lets the job start at once.
    c.wait("both nodes idle after the requeue",
           lambda: c.cmd("sinfo", "-h", "-N", "-o", "%t", check=False).split() == ["idle", "idle"], 60)
    print(f"TERM to requeued and nodes idle: {time.monotonic() - t0:.1f} s")
    # slurmd revoked the job's old credential when the first run ended, and
    # refuses a credential created in the same second as that revocation
    # ("Job credential revoked", the job then FAILS). Slurm's own hold above
    # avoids it; a test that skips the hold waits for the next wall second.
    time.sleep(2.0)
    c.cmd("scontrol", "update", f"JobId={jid}", "StartTime=now")
    info = c.wait_done(jid)
    log = read(out)
    ok = e.check(info.get("JobState") == "COMPLETED" and info.get("Restarts") == "1",
                 f"TERM job {jid}: COMPLETED after 1 requeue (got {info.get('JobState')}, "
                 f"restarts {info.get('Restarts')})")
    m = re.search(r"stopped by signal 15 after step (\d+); final checkpoint written", log)
    ok &= e.check(m is not None, "every rank stopped on SIGTERM after the same step, final checkpoint written")
    if m:
        step = int(m.group(1))
        ok &= e.check(EVERY <= step < STEPS, f"stopped mid-run (step {step} of {STEPS})")
        name = os.path.join(ckpt, f"ckpt-{step:08d}.h5")
        ok &= e.check(f"resumed from {name} (step {step}," in log,
                      f"the requeued run resumed from the final checkpoint {os.path.basename(name)}")
    ok &= e.check("requeueing job " + jid in log, "the script requeued the job")
    ok &= e.check("ringtrain launch: stopped by signal 15" in log, "the launcher stopped on SIGTERM")
    ok or print(log[-6000:]) or c.logs(jid)
    e.same_bytes(p("term.h5"), ref, "TERM + requeue vs an uninterrupted run")


def node_failure(c, p, train, ref):
    ckpt = p("ck_node")
    dead = c.node(2)
    jid, out = c.submit("node", ckpt, p("node.h5"), train, "--no-requeue", step_sleep_ms=5)
    if not wait_ckpt(c, ckpt, jid):
        print(read(out)[-4000:])
        return
    # The node dies: every process in its namespace, slurmd included.
    victims = ns_pids(dead)
    names = sorted({comm(v) for v in victims})
    for v in victims:
        try:
            os.kill(int(v), signal.SIGKILL)
        except ProcessLookupError:
            pass
    e.check("slurmd" in names and "slurmstepd" in names,
            f"killed node {dead}: its slurmd, slurmstepd and ranks ({', '.join(names)})")
    t0 = time.monotonic()
    info = c.wait_done(jid)
    print(f"node killed to job gone: {time.monotonic() - t0:.1f} s")
    log = read(out)
    ok = e.check(info.get("JobState") in ("NODE_FAIL", "FAILED"),
                 f"job {jid} ended as NODE_FAIL or FAILED (got {info.get('JobState')}, reason "
                 f"{info.get('Reason')})")
    ok &= e.check(re.search(rf"failed node\(s\): {dead} ", log) is not None,
                  f"the job's output names the failed node {dead}")
    time.sleep(1)
    left = lingering(ckpt)
    ok &= e.check(not left, f"no process of the job left anywhere ({left})")
    steps = [v for v in ns_pids(c.node(1)) if comm(v) != "slurmd"]
    ok &= e.check(not steps, f"only slurmd left on {c.node(1)} ({[comm(v) for v in steps]})")
    ok or print(log[-6000:])
    newest = ckpts(ckpt)[-1] if ckpts(ckpt) else None
    e.check(newest is not None and newest != os.path.join(ckpt, f"ckpt-{STEPS:08d}.h5"),
            f"the failed job left checkpoints short of the end (newest {newest})")

    # The node comes back; the same submission resumes.
    subprocess.run(["bash", os.path.join(e.SRC, "cluster", "slurm", "slurm-node.sh"), c.id, "2"],
                   check=True, env=c.env)
    t0 = time.monotonic()
    c.wait(f"node {dead} idle again",
           lambda: c.cmd("sinfo", "-h", "-N", "-n", dead, "-o", "%t", check=False).strip() == "idle", 60)
    print(f"slurmd restarted to node idle: {time.monotonic() - t0:.1f} s")
    jid2, out2 = c.submit("node-again", ckpt, p("node.h5"), train)
    info = c.wait_done(jid2)
    log = read(out2)
    ok = e.check(info.get("JobState") == "COMPLETED", f"resubmitted job {jid2}: COMPLETED "
                 f"(got {info.get('JobState')})")
    ok &= e.check(newest is not None and f"resumed from {newest} " in log,
                  f"the resubmission resumed from the newest checkpoint {newest}")
    ok or print(log[-6000:])
    e.same_bytes(p("node.h5"), ref, "node failure + resubmission vs an uninterrupted run")


def main():
    cid, scratch = sys.argv[1], sys.argv[2]
    e.require_train_flags("--export-params", "--threads", "--ckpt-dir")
    c = Cluster(cid, scratch)
    p = lambda n: os.path.join(scratch, n)
    spec = e.write_dataset(p("train.h5"))
    train = ["--model", spec, "--data", p("train.h5"), "--batch", 16, "--steps", STEPS,
             "--optimizer", "adamw", "--lr", 3e-3, "--seed", 7, "--threads", 1, "--log-every", 100]
    t0 = time.monotonic()
    ref = e.Run(["-np", 4, "--oversubscribe", "--", "train", *train, "--export-params", p("ref.h5")])
    e.check(ref.rc == 0, f"mpirun -np 4 on one host exits 0 (got {ref.rc})") or ref.dump()
    print(f"reference (np=4, one host): {time.monotonic() - t0:.1f} s")
    for test in (plain, preempt, node_failure):
        t0 = time.monotonic()
        print(f"== {test.__name__}")
        try:
            test(c, p, train, p("ref.h5"))
        except (RuntimeError, subprocess.SubprocessError) as x:
            e.check(False, f"{test.__name__}: {x}")
        left = [n for n in os.listdir(c.tmp) if n.startswith("ringtrain-hosts.")]
        e.check(not left, f"{test.__name__}: the script's hostfile is gone ({left})")
        for n in left:  # so that the next job's check sees its own only
            os.unlink(os.path.join(c.tmp, n))
        print(f"{test.__name__}: {time.monotonic() - t0:.1f} s")
    e.finish()


if __name__ == "__main__":
    main()
