"""e2e_common.py - shared pieces of the launcher/cluster end-to-end tests:
prerequisite checks that skip (exit 77) with the reason, a learnable
dataset written with h5py in the documented format, running
`ringtrain launch` while timestamping every stderr line, and byte-for-byte
comparison of exported parameters (h5py)."""
import os
import re
import subprocess
import sys
import threading
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = os.environ.get("RINGTRAIN", "")  # may be unset: require_train_flags skips then
SRC = os.environ.get("RT_SOURCE_DIR", "")
SKIP = 77
_checker = rt_testlib.Checks(show_ok=True)
# check(cond, msg) records an expectation, prints ok/FAIL and returns bool(cond)
check, failures = _checker.check, _checker.failures


def finish():
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def train_help():
    r = subprocess.run([RINGTRAIN, "train", "--help"], capture_output=True, text=True, timeout=30)
    return r.stdout if r.returncode == 0 else ""


def require_train_flags(*flags):
    """Skips unless `ringtrain train --help` offers every flag as working
    (a help line saying "not supported" counts as missing)."""
    if not RINGTRAIN or not os.path.exists(RINGTRAIN):
        skip("RINGTRAIN does not name the ringtrain binary")
    text = train_help()
    if not text:
        skip("`ringtrain train --help` fails: the trainer is not built yet")
    for f in flags:
        lines = [l for l in text.splitlines() if re.search(rf"\s{re.escape(f)}(\s|$)", l)]
        if not lines:
            skip(f"`ringtrain train` has no {f} yet")
        if any("not supported" in l for l in lines):
            skip(f"`ringtrain train {f}` is not supported yet")


def require_hook(name):
    """Skips unless the binary reads the test hook environment variable."""
    with open(RINGTRAIN, "rb") as f:
        if name.encode() not in f.read():
            skip(f"the trainer does not implement the test hook {name} (docs/LAUNCH.md)")


def write_dataset(path, seed=5, n=2048, features=32, classes=10):
    rng = np.random.default_rng(seed)
    x, _, y = rt_testlib.learnable_data(rng, n, features, classes)
    rt_testlib.write_dataset(path, x, y, classes)
    return f"mlp:{features},48,{classes}"


class Run:
    """`ringtrain launch ARGS` with every stderr line timestamped."""

    def __init__(self, args, env=None, timeout=240):
        self.cmd = [RINGTRAIN, "launch"] + [str(a) for a in args]
        self.lines = []  # (seconds since start, text)
        full_env = dict(os.environ)
        full_env.update(env or {})
        t0 = time.monotonic()
        p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=full_env)
        out = []
        reader = threading.Thread(target=lambda: out.append(p.stdout.read()))
        reader.start()
        watchdog = threading.Timer(timeout, p.kill)  # a hung launcher fails the test
        watchdog.start()
        for line in p.stderr:
            self.lines.append((time.monotonic() - t0, line.rstrip("\n")))
        self.rc = p.wait()
        watchdog.cancel()
        reader.join()
        self.stdout = out[0] if out else ""
        self.stderr = "\n".join(t for _, t in self.lines)

    def first(self, pattern, after=0.0):
        """Time and text of the first stderr line matching pattern."""
        for t, text in self.lines:
            if t >= after and re.search(pattern, text):
                return t, text
        return None, None

    def all(self, pattern):
        return [(t, x) for t, x in self.lines if re.search(pattern, x)]

    def dump(self):
        print("command:", " ".join(self.cmd))
        print(self.stderr[-6000:])


def params(path):
    with h5py.File(path, "r") as f:
        return {k: f["params"][k][()] for k in f["params"]}


def same_bytes(a_path, b_path, what):
    """Checks that two exported parameter files hold the same tensors, bit for bit."""
    if not (os.path.exists(a_path) and os.path.exists(b_path)):
        check(False, f"{what}: parameter files missing ({a_path}, {b_path})")
        return
    a, b = params(a_path), params(b_path)
    check(sorted(a) == sorted(b), f"{what}: same tensor names {sorted(a)}")
    worst = 0.0
    for k in sorted(set(a) & set(b)):
        same = a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and \
            a[k].tobytes() == b[k].tobytes()
        if a[k].shape == b[k].shape:
            worst = max(worst, float(np.max(np.abs(a[k].astype(np.float64) - b[k]))))
        check(same, f"{what}: {k} identical byte for byte")
    print(f"{what}: largest absolute difference {worst:.3e}")
