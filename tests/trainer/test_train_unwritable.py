#!/usr/bin/env python3
"""test_train_unwritable.py - `ringtrain train` finds outputs it cannot
write before the first step: exit 2, one line naming the path and the
cause, no step run, no metrics written.

- --export-params in a directory that does not exist, below a regular file,
  or naming a directory (np=1, and np=2 under mpiexec: every rank stops);
- --ckpt-dir that exists, whose .lock the user may open, but in which the
  user cannot create files. Root writes anywhere, so as root the run is
  made as user nobody (setpriv); a test user who is not root gets a
  read-only directory (chmod 555). Without either that case is reported
  and left out.
- a writable --export-params that already exists is accepted and replaced
  at the end."""
import os
import pwd
import shutil
import stat
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks(show_ok=True)
check = checker.check


def refused(r, what, path, cause):
    """exit 2, one stderr line with the path and the cause, no step run."""
    lines = [l for l in r.stderr.splitlines() if path in l]
    ok = check(r.returncode == 2, f"{what}: exit 2 (got {r.returncode})")
    ok &= check(len(lines) >= 1 and any(cause in l for l in lines),
                f"{what}: a line names {path} and says '{cause}': {lines}")
    ok &= check("step " not in r.stdout and "train " not in r.stdout,
                f"{what}: refused before the first step")
    if not ok:
        print(r.stdout[-1500:], r.stderr[-1500:])


def main():
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)  # another user (nobody) must reach the files below
        p = lambda n: os.path.join(d, n)
        rng = np.random.default_rng(2)
        x, _, y = rt_testlib.learnable_data(rng, 512, 16, 4)
        data = rt_testlib.write_dataset(p("train.h5"), x, y, 4)
        os.chmod(data, 0o644)
        args = ["--model", "mlp:16,8,4", "--data", data, "--batch", "8", "--threads", "1",
                "--steps", "20", "--log-every", "5"]

        def train(np_, *extra, user_cmd=()):
            cmd = list(user_cmd) + rt_testlib.mpi_cmd(np_, [RINGTRAIN, "train", *args, *extra])
            return rt_testlib.run(cmd, timeout=120)

        # --export-params: a missing directory, below a file, a directory
        missing = p("nodir/params.h5")
        r = train(0, "--export-params", missing, "--metrics", p("m1.jsonl"))
        refused(r, "export into a missing directory", missing, "No such file or directory")
        check(not os.path.exists(p("m1.jsonl")), "no metrics written before the refusal")
        open(p("plain.txt"), "w").close()
        below = p("plain.txt/params.h5")
        refused(train(0, "--export-params", below), "export below a regular file", below, "Not a directory")
        os.mkdir(p("adir"))
        refused(train(0, "--export-params", p("adir")), "export onto a directory", p("adir"), "directory")
        refused(train(2, "--export-params", missing), "np=2: export into a missing directory", missing,
                "No such file or directory")

        # an existing export file is not touched by the check, and replaced at the end
        out = p("old.h5")
        with open(out, "w") as f:
            f.write("old contents\n")
        r = train(0, "--export-params", out)
        check(r.returncode == 0, f"existing writable export: exit 0 ({r.returncode}) {r.stderr[-800:]}")
        check(open(out, "rb").read(4) == b"\x89HDF", "the export replaced the old file at the end")

        # --ckpt-dir the user cannot write in (but whose .lock opens)
        ck = p("ck")
        os.mkdir(ck)
        with open(os.path.join(ck, ".lock"), "w"):
            pass
        os.chmod(os.path.join(ck, ".lock"), 0o666)
        user = ()
        if os.geteuid() == 0:
            if shutil.which("setpriv") and os.access(RINGTRAIN, os.X_OK):
                nobody = pwd.getpwnam("nobody")
                user = ("setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups")
                # nobody must be able to run the binary: every directory above it searchable
                probe = rt_testlib.run([*user, RINGTRAIN, "--help"], timeout=30)
                if probe.returncode not in (0, 2):
                    user = None
            else:
                user = None
        else:
            os.chmod(ck, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        if user is None:
            print("note: unwritable --ckpt-dir case left out (root without setpriv to run as nobody)")
        else:
            r = train(0, "--ckpt-dir", ck, user_cmd=user)
            refused(r, "--ckpt-dir the user cannot write in", ck, "not writable")
            check(sorted(os.listdir(ck)) == [".lock"], f"nothing left in {ck}: {os.listdir(ck)}")
            os.chmod(ck, 0o755)
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
