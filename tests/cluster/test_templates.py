#!/usr/bin/env python3
"""test_templates.py - the Slurm and Kubernetes templates run the same
training: the sbatch script, run by bash under a stand-in Slurm (scontrol on
PATH, SLURM_* variables) with a stand-in ringtrain, writes a hostfile that
`ringtrain launch` accepts, calls `ringtrain launch --hostfile ...
--max-restarts N -- train ...`, forwards SIGTERM to it and requeues after a
stop by SIGTERM; the MPIJob manifest (parsed with PyYAML) is a kubeflow
v2beta1 Open MPI job whose launcher runs `ringtrain launch --hostfile
/etc/mpi/hostfile` with the same train arguments (paths compared by name)."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402

PATH_FLAGS = {"--data", "--eval", "--ckpt-dir", "--metrics"}


def train_args(argv):
    """The arguments after "--", path values reduced to their last component."""
    args = argv[argv.index("--") + 1:]
    out = []
    for i, a in enumerate(args):
        out.append(os.path.basename(a) if i and args[i - 1] in PATH_FLAGS else a)
    return out


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def run_sbatch(d, mode):
    """Runs the sbatch script; the stand-in ringtrain records its argv and
    hostfile and then exits 0 (mode ok) or waits for SIGTERM (mode term)."""
    binp = os.path.join(d, "bin")
    os.makedirs(binp, exist_ok=True)
    write_exe(os.path.join(binp, "scontrol"), f"""#!/bin/bash
case "$1 $2" in
  "show hostnames") echo node01; echo node02 ;;
  "requeue "*) echo "$2" > {d}/requeued ;;
esac
""")
    write_exe(os.path.join(d, "ringtrain"), f"""#!/bin/bash
printf '%s\\n' "$@" > {d}/argv
while [ $# -gt 0 ]; do [ "$1" = --hostfile ] && cp "$2" {d}/hosts && stat -c %a "$2" > {d}/hosts.mode; shift; done
if [ "{mode}" = term ]; then
  trap 'echo TERM > {d}/got_term; exit 143' TERM
  touch {d}/ready
  for _ in $(seq 300); do sleep 0.1; done
fi
exit 0
""")
    env = dict(os.environ, PATH=binp + ":" + os.environ["PATH"], RINGTRAIN=os.path.join(d, "ringtrain"),
               SLURM_NTASKS_PER_NODE="4(x2)", SLURM_JOB_NODELIST="node[01-02]",
               SLURM_JOB_NAME="ringtrain", SLURM_JOB_ID="4242", TMPDIR=d)
    script = os.path.join(e.SRC, "cluster", "slurm", "ringtrain.sbatch")
    p = subprocess.Popen(["bash", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    if mode == "term":
        for _ in range(100):
            if os.path.exists(os.path.join(d, "ready")):
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    with open(os.path.join(d, "argv")) as f:
        argv = f.read().splitlines()
    return p.returncode, out, argv


def main():
    if not e.RINGTRAIN or not e.SRC:
        e.skip("RINGTRAIN and RT_SOURCE_DIR must be set")
    with tempfile.TemporaryDirectory() as d:
        rc, out, argv = run_sbatch(d, "ok")
        e.check(rc == 0, f"sbatch script exits 0 ({rc}): {out}")
        e.check(argv[:2] == ["launch", "--hostfile"], f"runs ringtrain launch --hostfile: {argv[:3]}")
        e.check("--max-restarts" in argv and "--resume" in argv and "auto" in argv,
                "restarts enabled, resuming automatically")
        with open(os.path.join(d, "hosts")) as f:
            hosts = f.read()
        e.check(hosts == "node01 slots=4\nnode02 slots=4\n", f"hostfile from the allocation: {hosts!r}")
        with open(os.path.join(d, "hosts.mode")) as f:
            e.check(f.read().strip() == "600", "hostfile readable by the owner only")
        e.check(not any(n.startswith("ringtrain-hosts.") for n in os.listdir(d)),
                "hostfile removed at exit")
        dry = subprocess.run([e.RINGTRAIN, "launch", "--hostfile", os.path.join(d, "hosts"),
                              "--dry-run", "--", "train"], capture_output=True, text=True)
        e.check(dry.returncode == 0 and " -np 8 " in dry.stdout,
                f"ringtrain launch accepts the hostfile (8 ranks): {dry.stdout}{dry.stderr}")
        slurm_train = train_args(argv)

    with tempfile.TemporaryDirectory() as d:
        rc, out, _ = run_sbatch(d, "term")
        e.check(os.path.exists(os.path.join(d, "got_term")), "SIGTERM to the batch shell reaches the launcher")
        e.check(rc == 143, f"batch script exits 143 after SIGTERM (got {rc})")
        req = os.path.join(d, "requeued")
        e.check(os.path.exists(req) and open(req).read().strip() == "4242", "job requeued after SIGTERM")

    with open(os.path.join(e.SRC, "cluster", "k8s", "mpijob.yaml")) as f:
        job = yaml.safe_load(f)
    e.check(job["apiVersion"] == "kubeflow.org/v2beta1" and job["kind"] == "MPIJob",
            "kubeflow v2beta1 MPIJob")
    spec = job["spec"]
    e.check(spec.get("mpiImplementation") == "OpenMPI", "Open MPI implementation")
    reps = spec["mpiReplicaSpecs"]
    cmd = reps["Launcher"]["template"]["spec"]["containers"][0]["command"]
    e.check(cmd[:4] == ["ringtrain", "launch", "--hostfile", "/etc/mpi/hostfile"],
            f"launcher runs ringtrain launch on the operator's hostfile: {cmd[:4]}")
    e.check(all(isinstance(c, str) for c in cmd), "every command word is a string")
    e.check(train_args(cmd) == slurm_train,
            f"same training as the Slurm script:\n  k8s   {train_args(cmd)}\n  slurm {slurm_train}")
    grace = int(cmd[cmd.index("--grace") + 1])
    for role in ("Launcher", "Worker"):
        tgp = reps[role]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        e.check(tgp > 2 * grace, f"{role}: terminationGracePeriodSeconds {tgp} > 2 x --grace {grace}")
    e.finish()


if __name__ == "__main__":
    main()
