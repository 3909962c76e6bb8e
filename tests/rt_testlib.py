"""rt_testlib.py - helpers shared by the Python tests: where the binary and
mpiexec are (RINGTRAIN, MPIEXEC), a recorder of checks with the closing
"N passed, N failed" line, the documented classification/token dataset
written with h5py, IDX bytes for gzip/struct-made input, and running a
command (optionally under mpiexec) with a timeout.

Standard library only at import time: h5py is imported inside the one
function that needs it, so tests run by another python3 (the GPU machine's)
can import this module. Tests import it with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))"""
import gzip
import os
import struct
import subprocess


def ringtrain():
    """The binary under test; a KeyError when ctest did not set RINGTRAIN."""
    return os.environ["RINGTRAIN"]


def mpiexec():
    return os.environ.get("MPIEXEC", "mpiexec")


class Checks:
    """Records expectations: a failed one is printed as `fail_tag msg` and
    kept in .failures; with show_ok a passed one is printed as `ok   msg`.
    .failures is a plain list, so tests may keep reading it directly."""

    def __init__(self, show_ok=False, fail_tag="FAIL"):
        self.failures = []
        self.count = 0
        self.show_ok = show_ok
        self.fail_tag = fail_tag

    def check(self, cond, msg):
        """Records cond; returns it as a bool so callers can branch on it."""
        self.count += 1
        if cond:
            if self.show_ok:
                print("ok  ", msg)
        else:
            self.failures.append(msg)
            print(self.fail_tag, msg)
        return bool(cond)

    def summary(self):
        """Prints "N passed, N failed" and returns the exit code."""
        print(f"{self.count - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def write_dataset(path, x, y, classes, kind="classification"):
    """A dataset in the documented layout (docs/FORMATS.md): classification
    (/inputs, /labels, num_classes=classes) or tokens (/tokens from x,
    vocab_size=classes). Returns path."""
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "ringtrain-dataset"
        f.attrs["format_version"] = 1
        f.attrs["kind"] = kind
        if kind == "classification":
            f.attrs["num_classes"] = classes
            f["inputs"] = x
            f["labels"] = y
        else:
            f.attrs["vocab_size"] = classes
            f["tokens"] = x
    return path


def learnable_data(rng, n, features, classes, noise=0.3):
    """Learnable classification data: uint8 inputs x (n, features), a weight
    matrix w and labels y = argmax(x/255 @ w + noise * N(0,1)). rng (a numpy
    Generator) draws x, then w, then the noise, in that order, so a seed
    gives the same data as before. Returns x, w, y (w for held-out sets)."""
    import numpy as np
    x = rng.integers(0, 256, (n, features), dtype=np.uint8)
    w = rng.standard_normal((features, classes))
    y = ((x / 255.0) @ w + noise * rng.standard_normal((n, classes))).argmax(1).astype(np.uint8)
    return x, w, y


def idx_bytes(dims, body, dtype=0x08):
    """An IDX file's bytes: magic (0, dtype, ndim), big-endian dims, body."""
    return struct.pack(">HBB", 0, dtype, len(dims)) + struct.pack(">" + "I" * len(dims), *dims) + body


def write_bytes(path, data, gz=False):
    """Writes data to path, gzip-compressed when gz; returns path."""
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def mpi_cmd(np_, cmd):
    """cmd under `mpiexec -np np_` (oversubscribed, unbound); cmd itself when np_ is 0."""
    if not np_:
        return list(cmd)
    return [mpiexec(), "-np", str(np_), "--oversubscribe", "--bind-to", "none"] + list(cmd)


def run(cmd, timeout=None, env=None, **kwargs):
    """subprocess.run with text output captured; env entries are added to
    os.environ (None: the environment as is)."""
    full_env = None if env is None else {**os.environ, **env}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          **kwargs)
