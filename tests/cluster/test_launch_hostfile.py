#!/usr/bin/env python3
"""test_launch_hostfile.py - hostfiles that the launcher accepts are ones
that Open MPI's mpirun (4.1) accepts too, with the real mpirun:

- CRLF line endings (a file saved on Windows): accepted, and the job runs
  (mpirun itself refuses such a file with a parse error, so the launcher
  hands it a copy without the carriage returns);
- `slots=+2` (mpirun reads it as slots=-1) and `max_slots=+2`, an IPv6
  address (`::1`, `fe80::1`) and a name with '_' (mpirun's node-name rule:
  letters, digits, '.', '-'): refused with exit 2 and FILE:LINE: reason,
  before mpirun runs (no "running:" line).
The job is a 5-step MLP run on 2 ranks of this host (localhost slots=2)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as e  # noqa: E402


def main():
    e.require_train_flags("--threads")
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        spec = e.write_dataset(p("train.h5"), n=256)
        train = ["train", "--model", spec, "--data", p("train.h5"), "--batch", 8, "--threads", 1,
                 "--steps", 5, "--log-every", 5]

        hf = p("crlf.hosts")
        with open(hf, "wb") as f:
            f.write(b"# written on Windows\r\nlocalhost slots=2\r\n\r\n")
        r = e.Run(["--hostfile", hf, "-np", 2, "--", *train], timeout=120)
        e.check(r.rc == 0, f"CRLF hostfile: the job runs (exit {r.rc})") or r.dump()
        e.check("step 5/5" in r.stdout, "CRLF hostfile: both ranks trained 5 steps") or print(r.stdout[-1000:])
        e.check(open(hf, "rb").read().count(b"\r") == 3, "CRLF hostfile: the user's file is left as it was")

        for name, text, line, reason in [
                ("plus-slots", "localhost slots=+2\n", 1, "slots='+2' has a sign"),
                ("plus-max", "# c\nlocalhost slots=1 max_slots=+2\n", 2, "max_slots='+2' has a sign"),
                ("ipv6-loopback", "::1 slots=2\n", 1, "IPv6 address"),
                ("ipv6", "localhost slots=1\nfe80::1 slots=1\n", 2, "IPv6 address"),
                ("underscore", "my_host slots=2\n", 1, "letters, digits, '.' and '-'")]:
            hf = p(name + ".hosts")
            with open(hf, "w") as f:
                f.write(text)
            r = e.Run(["--hostfile", hf, "-np", 1, "--", *train], timeout=120)
            e.check(r.rc == 2, f"{name}: exit 2 (got {r.rc})") or r.dump()
            e.check(f"{hf}:{line}: " in r.stderr and reason in r.stderr,
                    f"{name}: names {hf}:{line} and says '{reason}'") or r.dump()
            e.check(not r.first("running: ")[0], f"{name}: mpirun never ran")
    e.finish()


if __name__ == "__main__":
    main()
