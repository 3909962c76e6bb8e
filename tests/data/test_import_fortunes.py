"""test_import_fortunes.py - data/import_fortunes.sh: the two files it writes
hold, together and in order, exactly the bytes of the plain-text fortune
files (sorted by name; no *.dat, no *.u8, no symlink, nothing in a
subdirectory) concatenated, the validation file the last 5 %. The file
selection is checked on a made-up directory (RT_FORTUNES_DIR), the failure
without the package on a missing one; then the real corpus, skipped (77)
only when Debian's fortunes package is not installed."""
import os
import subprocess
import sys
import tempfile

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
SCRIPT = os.path.join(os.environ["RT_SOURCE_DIR"], "data", "import_fortunes.sh")
FORTUNES = "/usr/share/games/fortunes"  # where Debian's package puts them
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures


def run(out, fortunes_dir):
    env = dict(os.environ, RT_FORTUNES_DIR=fortunes_dir)
    return subprocess.run(["bash", SCRIPT, out, RINGTRAIN], capture_output=True, text=True,
                          env=env, timeout=120)


def corpus_files(d):
    """The selection, written independently of the script's find(1)."""
    names = sorted(n for n in os.listdir(d)
                   if not n.endswith((".dat", ".u8")) and not os.path.islink(os.path.join(d, n))
                   and os.path.isfile(os.path.join(d, n)))
    return [os.path.join(d, n) for n in names]


def check_import(out, src, what):
    r = run(out, src)
    check(r.returncode == 0, f"{what}: exit {r.returncode} {r.stderr}")
    if r.returncode != 0:
        return
    files = corpus_files(src)
    whole = b"".join(open(f, "rb").read() for f in files)
    nval = round(len(whole) * 0.05)
    with h5py.File(os.path.join(out, "fortunes-train.h5"), "r") as f, \
            h5py.File(os.path.join(out, "fortunes-val.h5"), "r") as g:
        train, val = bytes(f["tokens"][...]), bytes(g["tokens"][...])
        check(int(f.attrs["vocab_size"]) == 256 and int(g.attrs["vocab_size"]) == 256,
              f"{what}: byte vocabulary")
    check(train + val == whole, f"{what}: train + val are the {len(files)} files' bytes in order")
    check(len(val) == nval, f"{what}: val holds the last 5 % ({len(val)} of {len(whole)} bytes)")
    check(f"fortunes-train.h5: {len(whole) - nval} tokens" in r.stdout
          and f"fortunes-val.h5: {nval} tokens" in r.stdout, f"{what}: counts printed {r.stdout!r}")
    return files


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda *names: os.path.join(tmp, *names)
        # the selection rules, on a directory shaped like the package's
        src = p("fortunes")
        os.makedirs(p("fortunes", "off"))
        for name, text in (("zen", b"Be here now.\n%\nOr later.\n"), ("art", b"A\n%\nB\n"),
                           ("Beta", b"capital first in C order\n"), ("art.dat", b"\x00\x02index"),
                           ("off/rude", b"not this\n")):
            with open(p("fortunes", name), "wb") as f:
                f.write(text * 40)
        os.symlink("art", p("fortunes", "art.u8"))
        os.symlink("zen", p("fortunes", "zen-link"))
        files = check_import(p("out-fake"), src, "made-up directory")
        check(files is not None and [os.path.basename(f) for f in files] == ["Beta", "art", "zen"],
              f"made-up directory: selection {files}")

        # no package: a clear message, nothing written
        r = run(p("out-none"), p("absent"))
        check(r.returncode != 0 and "fortunes package" in r.stderr
              and len(r.stderr.strip().splitlines()) == 1, f"missing package: {r.stderr!r}")
        check(not os.path.exists(p("out-none")), "missing package: no output directory")

        if not os.path.isdir(FORTUNES):
            print(f"{FORTUNES} missing (Debian package fortunes); skipping the real corpus")
            print(f"{len(failures)} failed")
            return 1 if failures else 77
        files = check_import(p("out"), FORTUNES, "fortunes")
        check(files is not None and len(files) > 10, f"fortunes: {len(files or [])} files")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
