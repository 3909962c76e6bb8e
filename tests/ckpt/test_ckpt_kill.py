#!/usr/bin/python3
"""test_ckpt_kill.py - whole-program checkpoint failures, each checked
against the files on disk:
- SIGKILL while the writer is paused mid-write (RT_CKPT_TEST_PAUSE_AFTER)
  before the first, in the middle of, and before the last dataset: the
  final name never appears, the previous checkpoint verifies, and resume
  (ckpt_driver load DIR) takes it and reports the unfinished file;
- a flipped byte in params/fc1.weight (offset from h5py) and a truncated
  file: `ringtrain ckpt verify` exits 1 naming the dataset / the truncation,
  and resume skips to the older checkpoint saying why;
- another model spec and a newer format_version: refused with both specs /
  the version;
- a full disk (a 4 MiB tmpfs, when this runs as root and may mount) and a
  read-only directory (the same tmpfs remounted): an error, earlier
  checkpoints byte-identical."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

driver = sys.argv[1]
ringtrain = rt_testlib.ringtrain()
checker = rt_testlib.Checks(fail_tag="FAIL:")
expect, failures = checker.check, checker.failures


def run(*args, env=None):
    """env, when given, is the whole environment of the command."""
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=60)


def ckpt(d, step):
    return os.path.join(d, "ckpt-%08d.h5" % step)


def load(d, *extra):
    return run(driver, "load", d, *extra)


def file_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def kill_mid_write(d, step, after):
    """Starts a write that pauses after `after` datasets, kills it there."""
    env = dict(os.environ, RT_CKPT_TEST_PAUSE_AFTER=str(after))
    p = subprocess.Popen([driver, "write", d, str(step)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         text=True, env=env)
    tmp = None
    for line in p.stderr:
        if line.startswith("RT_CKPT_TEST_PAUSED "):
            tmp = line.split(" ", 1)[1].strip()
            break
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stderr.close()
    return tmp


root = tempfile.mkdtemp(prefix="test_ckpt_kill.")
try:
    d = os.path.join(root, "run")
    r = run(driver, "write", d, "100")
    expect(r.returncode == 0, "write 100: " + r.stderr)
    digest100 = r.stdout.split("digest ")[1].strip()

    # --- SIGKILL mid-write, at three points (21 datasets in all) --------
    for after in (0, 7, 20):
        tmp = kill_mid_write(d, 200, after)
        expect(tmp is not None and os.path.exists(tmp), "paused writer left its temporary file (after %d)" % after)
        expect(not os.path.exists(ckpt(d, 200)), "no ckpt-200 after a kill (after %d)" % after)
        r = load(d)
        expect(r.returncode == 0 and "loaded step 100 " in r.stdout, "resume took 100 (after %d): %s %s" % (
            after, r.stdout, r.stderr))
        expect(("skip " + tmp + ": unfinished write") in r.stdout, "resume reported the partial file: " + r.stdout)
        expect(r.stdout.strip().endswith("digest " + digest100), "loaded digest equals the written one")
        r = run(ringtrain, "ckpt", "verify", ckpt(d, 100))
        expect(r.returncode == 0, "ckpt 100 verifies after kill: " + r.stderr)
        if tmp:
            r = run(ringtrain, "ckpt", "verify", tmp)
            print("partial (after %d): %s" % (after, r.stderr.strip()))
            expect(r.returncode == 1 and ("incomplete" in r.stderr or "truncated" in r.stderr),
                   "the partial file does not verify (after %d): rc %d %s" % (after, r.returncode, r.stderr))
            os.unlink(tmp)

    # --- a newer complete checkpoint is taken ---------------------------
    r = run(driver, "write", d, "300")
    expect(r.returncode == 0, "write 300: " + r.stderr)
    r = load(d)
    expect("loaded step 300 " in r.stdout, "resume takes the newest: " + r.stdout)

    # --- flipped byte inside params/fc1.weight --------------------------
    with h5py.File(ckpt(d, 300), "r") as f:
        off = f["params/fc1.weight"].id.get_offset()
    with open(ckpt(d, 300), "r+b") as f:
        f.seek(off + 100)
        b = f.read(1)
        f.seek(off + 100)
        f.write(bytes([b[0] ^ 0x01]))
    r = run(ringtrain, "ckpt", "verify", ckpt(d, 300))
    expect(r.returncode == 1 and "params/fc1.weight" in r.stderr and "checksum mismatch" in r.stderr
           and "fc2" not in r.stderr, "verify names the flipped dataset: rc %d %s" % (r.returncode, r.stderr))
    r = load(d)
    expect("loaded step 100 " in r.stdout and ("skip " + ckpt(d, 300)) in r.stdout
           and "params/fc1.weight" in r.stdout, "resume skips the corrupt one, saying why: " + r.stdout)

    # --- truncated file --------------------------------------------------
    r = run(driver, "write", d, "400")
    size = os.path.getsize(ckpt(d, 400))
    os.truncate(ckpt(d, 400), size * 6 // 10)
    r = run(ringtrain, "ckpt", "verify", ckpt(d, 400))
    expect(r.returncode == 1 and "truncated" in r.stderr, "verify fails a truncated file: " + r.stderr)
    r = load(d)
    expect("loaded step 100 " in r.stdout and ("skip " + ckpt(d, 400)) in r.stdout and "truncated" in r.stdout,
           "resume skips the truncated one: " + r.stdout)

    # --- another model spec, newer format version ------------------------
    r = load(ckpt(d, 100), "--spec", "mlp:8,32,3")
    expect(r.returncode == 1 and "mlp:8,16,3" in r.stderr and "mlp:8,32,3" in r.stderr,
           "spec mismatch names both: " + r.stderr)
    newer = os.path.join(root, "newer.h5")
    shutil.copy(ckpt(d, 100), newer)
    with h5py.File(newer, "r+") as f:
        f.attrs.modify("format_version", 2)
    r = run(ringtrain, "ckpt", "verify", newer)
    expect(r.returncode == 1 and "format_version 2" in r.stderr, "newer version refused: " + r.stderr)

    # --- full disk and read-only directory on a small tmpfs -------------
    mnt = os.path.join(root, "mnt")
    os.mkdir(mnt)
    mounted = os.geteuid() == 0 and run("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).returncode == 0
    if not mounted:
        print("note: cannot mount a tmpfs here; test_ckpt_file covers the full disk with RLIMIT_FSIZE")
    else:
        try:
            fd = os.path.join(mnt, "ck")
            r = run(driver, "write", fd, "1")
            expect(r.returncode == 0, "small write on tmpfs: " + r.stderr)
            before = file_bytes(ckpt(fd, 1))
            r = run(driver, "write", fd, "2", "--hidden", "100000")  # ~10 MB
            print("too big: " + r.stderr.strip())
            expect(r.returncode == 1 and "No space left" in r.stderr, "full disk is an error: " + r.stderr)
            expect(sorted(os.listdir(fd)) == ["ckpt-00000001.h5"], "nothing left behind: %s" % os.listdir(fd))
            expect(file_bytes(ckpt(fd, 1)) == before, "earlier checkpoint untouched by the full disk")
            # A nearly full disk (32 KiB left): the file can be created but
            # not finished. With the reservation the write fails before HDF5
            # writes data; without it (test hook) HDF5's own writes fail and
            # the writer must still clean up and not crash.
            filler = os.path.join(mnt, "filler")
            fill_fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fill_fd, b"\1" * 4096) > 0:
                    pass
            except OSError:
                pass
            os.close(fill_fd)
            os.truncate(filler, os.path.getsize(filler) - 32768)
            for hook in ({}, {"RT_CKPT_TEST_NO_RESERVE": "1"}):
                r = run(driver, "write", fd, "3", "--hidden", "2000", env=dict(os.environ, **hook))  # ~200 KB
                print("full disk %s: %s" % (hook, r.stderr.strip()))
                expect(r.returncode == 1 and "No space left" in r.stderr,
                       "write on a full disk fails cleanly %s: rc %d %s" % (hook, r.returncode, r.stderr))
                expect(sorted(os.listdir(fd)) == ["ckpt-00000001.h5"], "no partial file: %s" % os.listdir(fd))
            os.unlink(filler)
            r = run(driver, "load", fd)
            expect(r.stdout.startswith("loaded step 1 "), "step 1 still loads: " + r.stdout + r.stderr)
            run("mount", "-o", "remount,ro", mnt)
            r = run(driver, "write", fd, "4")
            print("read-only: " + r.stderr.strip())
            expect(r.returncode == 1 and "Read-only" in r.stderr, "read-only dir is an error: " + r.stderr)
            expect(file_bytes(ckpt(fd, 1)) == before, "earlier checkpoint untouched by the read-only dir")
        finally:
            run("umount", mnt)
finally:
    shutil.rmtree(root, ignore_errors=True)

print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
