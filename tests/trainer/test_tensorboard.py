#!/usr/bin/env python3
"""test_tensorboard.py - `ringtrain train --tensorboard DIR` end to end,
read back without the trainer's code: the messages are decoded with Python
classes that Debian's protoc generates from tb_event_check.proto (written
here from the published field numbers, not the vendored .proto), the
TFRecord framing and its masked CRC-32C are checked with
tests/ckpt/crc32c_ref.py.

- np=2 MLP with --eval, --metrics and checkpoints, then resumed for 10
  more steps: each run's own file (a new name), each starting with
  file_version "brain.Event:2"; the first file unchanged by the resumed
  run; the resumed run's file holds a SessionLog START at its first step
  (21) right after the version; the union holds every scalar of the metrics file once (same steps,
  the same value as float32 within the metrics text's printed digits),
  comm/exposed_ms included, and nothing else;
- np=1 byte-level GPT: tokens/s, bits/byte, MFU and the eval's bits/byte;
- the same file through our reader (tb_dump, argv[1]): the same scalars;
  cut inside its last record: the Python reader drops that record and
  reads the rest, ours prints the rest and reports the truncation (exit 1);
- a run killed (SIGKILL) in step 13: steps 5 and 10 are in the file,
  every record whole (flushed at each log step);
- an unwritable --tensorboard (below a regular file), np=1 and np=2:
  exit 2 naming the path, before the first step."""
import collections
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "ckpt"))
import rt_testlib  # noqa: E402
from crc32c_ref import crc32c  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
TB_DUMP = sys.argv[1]
checker = rt_testlib.Checks(show_ok=True)
check = checker.check

# metrics-file key -> TensorBoard tag (docs/TRAINING.md, "TensorBoard")
TAGS = {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
        "samples_per_s": "train/samples_per_s", "epoch": "train/epoch",
        "tokens_per_s": "train/tokens_per_s", "bits_per_byte": "train/bits_per_byte",
        "mfu": "train/mfu", "comm_exposed_ms": "comm/exposed_ms",
        "eval_loss": "eval/loss", "eval_accuracy": "eval/accuracy",
        "eval_bits_per_byte": "eval/bits_per_byte"}


def masked_crc(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    """The whole records' payloads and whether a cut-off tail was ignored
    (as TensorBoard's reader does); a CRC mismatch is a failed check."""
    data = open(path, "rb").read()
    out, at, bad, cut = [], 0, [], False
    while at < len(data):
        if at + 12 > len(data):
            cut = True
            break
        (n,) = struct.unpack_from("<Q", data, at)
        (lcrc,) = struct.unpack_from("<I", data, at + 8)
        if lcrc != masked_crc(data[at:at + 8]):
            bad.append(f"length @{at}")
        if at + 12 + n + 4 > len(data):
            cut = True
            break
        body = data[at + 12:at + 12 + n]
        (dcrc,) = struct.unpack_from("<I", data, at + 12 + n)
        if dcrc != masked_crc(body):
            bad.append(f"data @{at}")
        out.append(body)
        at += 12 + n + 4
    check(not bad, f"{os.path.basename(path)}: {len(out)} records, both masked CRCs right (wrong: {bad[:4]})")
    return out, cut


def read_events(pb, path):
    """(file_versions in order with their record index, [(step, tag, value)], truncated)."""
    recs, cut = read_records(path)
    versions, scalars, kinds, times = [], [], set(), []
    for i, body in enumerate(recs):
        ev = pb.CheckEvent()
        ev.ParseFromString(body)
        which = ev.WhichOneof("what")
        if which == "file_version":
            versions.append((i, ev.file_version))
        elif which == "summary":
            for v in ev.summary.value:
                kinds.add(v.WhichOneof("kind"))
                scalars.append((ev.step, v.tag, v.simple_value))
        times.append(ev.wall_time)
    check(kinds <= {"simple_value"}, f"{os.path.basename(path)}: every value a simple_value ({kinds})")
    check(times == sorted(times) and times and times[0] > 1.6e9,
          f"{os.path.basename(path)}: wall times are Unix times, in order")
    return versions, scalars, cut


def session_logs(pb, path):
    """[(record index, step, status, msg)] of the file's session_log events."""
    recs, _ = read_records(path)
    out = []
    for i, body in enumerate(recs):
        ev = pb.CheckEvent()
        ev.ParseFromString(body)
        if ev.WhichOneof("what") == "session_log":
            out.append((i, ev.step, ev.session_log.status, ev.session_log.msg))
    return out


def expected_scalars(metrics_path):
    """{(step, tag): metrics text} from the metrics file, the numbers kept as text."""
    want, dup = {}, []
    for line in open(metrics_path):
        obj = json.loads(line, parse_float=str, parse_int=str)
        step = int(obj["step"])
        for key, tag in TAGS.items():
            if key in obj:
                if (step, tag) in want:
                    dup.append((step, key))
                want[(step, tag)] = obj[key]
    check(not dup, f"{metrics_path}: each key once per step (repeated: {dup[:4]})")
    return want


def value_matches(text, got):
    """got (a float32) is float32(value), the value printed as text: equal
    when the text has the digits to round-trip; otherwise within half a
    unit of its last digit plus float32 rounding. null (not finite): NaN or
    an infinity."""
    if text is None:
        return not np.isfinite(got)
    x = float(text)
    mant = text.lower().split("e")[0].lstrip("-")
    digits = len(mant.replace(".", "").lstrip("0"))
    if digits >= 9:
        return np.float32(x) == np.float32(got)
    exp = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    quantum = 10.0 ** (exp - decimals)
    return abs(got - x) <= 0.5 * quantum * 1.000001 + abs(x) * 2.0 ** -24


def compare(what, want, got):
    """got: [(step, tag, value)] from every event file; each of want once."""
    count = collections.Counter((s, t) for s, t, _ in got)
    dup = [k for k, c in count.items() if c > 1]
    check(not dup, f"{what}: every (step, tag) once (repeated: {dup[:5]})")
    extra = sorted(set(count) - set(want))
    missing = sorted(set(want) - set(count))
    check(not extra and not missing,
          f"{what}: the metrics' scalars, no more (missing {missing[:5]}, extra {extra[:5]})")
    bad = [(s, t, v, want[(s, t)]) for s, t, v in got if (s, t) in want and not value_matches(want[(s, t)], v)]
    check(not bad, f"{what}: {len(got)} values equal the metrics as float32 (differ: {bad[:5]})")


def protoc_module(tmp):
    if not shutil.which("protoc"):
        return None
    r = subprocess.run(["protoc", f"--proto_path={HERE}", f"--python_out={tmp}",
                        os.path.join(HERE, "tb_event_check.proto")], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        return None
    sys.path.insert(0, tmp)
    try:
        import tb_event_check_pb2
    except ImportError as e:
        print(f"cannot import the generated module: {e}")
        return None
    return tb_event_check_pb2


def event_files(d):
    return sorted(glob.glob(os.path.join(d, "events.out.tfevents.*")))


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    with tempfile.TemporaryDirectory() as d:
        p = lambda n: os.path.join(d, n)
        pb = protoc_module(d)
        if pb is None:
            print("skipped: needs Debian's protoc and python3-protobuf (.ci/install-deps.sh)")
            return 77

        def train(np_, *args, quiet=False):
            r = rt_testlib.run(rt_testlib.mpi_cmd(np_, [RINGTRAIN, "train", "--threads", "1", *args]),
                               timeout=150)
            if r.returncode and not quiet:
                print(r.stdout[-1500:], r.stderr[-1500:])
            return r

        rng = np.random.default_rng(4)
        x, _, y = rt_testlib.learnable_data(rng, 512, 16, 4)
        data = rt_testlib.write_dataset(p("train.h5"), x, y, 4)
        tb = p("tb/mlp")  # a missing parent is created
        mlp = ["--model", "mlp:16,8,4", "--data", data, "--eval", data, "--batch", "8",
               "--log-every", "5", "--eval-every", "10", "--ckpt-dir", p("ck"), "--ckpt-every", "10",
               "--metrics", p("m.jsonl"), "--tensorboard", tb]

        # 1. np=2, 20 steps, then resumed to 30
        r = train(2, *mlp, "--steps", "20")
        check(r.returncode == 0, f"np=2 run: exit {r.returncode}")
        files = event_files(tb)
        check(len(files) == 1, f"one event file after the first run: {files}")
        first, first_sha = files[0], sha(files[0])
        name = os.path.basename(first).split(".")
        check(len(name) >= 6 and name[3].isdigit() and len(name[3]) == 10 and name[-1].isdigit(),
              f"events.out.tfevents.<time>.<host>.<pid>: {os.path.basename(first)}")
        r = train(2, *mlp, "--steps", "30")
        check(r.returncode == 0 and "resumed from" in r.stderr, f"resumed run: exit {r.returncode}")
        files = event_files(tb)
        check(len(files) == 2, f"the resumed run added a second file: {[os.path.basename(f) for f in files]}")
        check(sha(first) == first_sha, "the first file is unchanged by the resumed run")
        got = []
        for i, f in enumerate(files):
            versions, scalars, cut = read_events(pb, f)
            check(versions == [(0, "brain.Event:2")], f"{os.path.basename(f)}: first record file_version: {versions}")
            check(not cut, f"{os.path.basename(f)}: ends after a whole record")
            steps = {s for s, _, _ in scalars}
            logs = session_logs(pb, f)
            if f == first:
                check(steps and max(steps) <= 20, f"first file: steps up to 20 ({sorted(steps)})")
                check(logs == [], f"first file: no session_log ({logs})")
            else:
                check(steps and min(steps) > 20, f"second file: steps after 20 only ({sorted(steps)})")
                # SessionLog START at the resumed run's first step, right
                # after the version: TensorBoard purges older events at
                # steps >= 21 (what a killed run logged past ckpt-20)
                check(logs == [(1, 21, 1, "resumed from step 20")],
                      f"second file: session_log START at step 21 as record 1 ({logs})")
            got += scalars
        want = expected_scalars(p("m.jsonl"))
        tags = {t for _, t in want}
        check({"comm/exposed_ms", "eval/accuracy", "eval/loss", "train/loss"} <= tags, f"tags: {sorted(tags)}")
        check(sorted({s for s, _ in want}) == [5, 10, 15, 20, 25, 30], "metrics steps 5..30")
        compare("np=2 MLP + resume", want, got)

        # 2. our reader: the same scalars; a cut last record
        last = files[-1]
        dump = subprocess.run([TB_DUMP, last], capture_output=True, text=True)
        _, py_scalars, _ = read_events(pb, last)
        ours = [l.split() for l in dump.stdout.splitlines() if not l.startswith("version ")]
        ours = [(int(s), t, np.float32(v)) for s, t, v in ours]
        check(dump.returncode == 0 and "version brain.Event:2" in dump.stdout,
              f"tb_dump on a whole file: exit {dump.returncode} {dump.stderr}")
        check(ours == [(s, t, np.float32(v)) for s, t, v in py_scalars],
              f"our reader and the Python reader agree on {len(ours)} scalars")
        size = os.path.getsize(last)
        cutf = p("cut.tfevents")
        for drop in (1, 5, 17):
            with open(last, "rb") as f:
                body = f.read(size - drop)
            with open(cutf, "wb") as f:
                f.write(body)
            _, cut_scalars, cut = read_events(pb, cutf)
            check(cut and cut_scalars == py_scalars[:-1],
                  f"cut by {drop}: the Python reader ignores the last record, reads the {len(cut_scalars)} before")
            dump = subprocess.run([TB_DUMP, cutf], capture_output=True, text=True)
            n_ours = sum(1 for l in dump.stdout.splitlines() if not l.startswith("version "))
            check(dump.returncode == 1 and "truncated last record" in dump.stderr and cutf in dump.stderr
                  and n_ours == len(cut_scalars),
                  f"cut by {drop}: ours reports it ({dump.stderr.strip()}) after {n_ours} scalars")

        # 3. np=1 byte-level GPT: per-token figures
        text = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 40, dtype=np.uint8)
        tokens = rt_testlib.write_dataset(p("tok.h5"), text.copy(), None, 256, kind="tokens")
        tbg = p("tb/gpt")
        r = train(0, "--model", "gpt:layers=1,dim=16,heads=2,ctx=8", "--data", tokens, "--eval", tokens,
                  "--batch", "4", "--steps", "6", "--log-every", "3", "--eval-every", "6",
                  "--metrics", p("g.jsonl"), "--tensorboard", tbg)
        check(r.returncode == 0, f"gpt run: exit {r.returncode}")
        files = event_files(tbg)
        check(len(files) == 1, f"gpt: one file {files}")
        got = []
        for f in files:
            versions, scalars, _ = read_events(pb, f)
            check(versions == [(0, "brain.Event:2")], f"gpt: file_version {versions}")
            got += scalars
        want = expected_scalars(p("g.jsonl"))
        tags = {t for _, t in want}
        check({"train/tokens_per_s", "train/bits_per_byte", "train/mfu", "eval/bits_per_byte"} <= tags,
              f"gpt tags: {sorted(tags)}")
        compare("np=1 GPT", want, got)

        # 4. killed (SIGKILL) in step 13 of 20: the steps logged before it are on disk, whole
        tbk = p("tb/killed")
        r = rt_testlib.run([RINGTRAIN, "train", "--threads", "1", "--model", "mlp:16,8,4", "--data", data,
                            "--batch", "8", "--steps", "20", "--log-every", "5", "--tensorboard", tbk],
                           timeout=150, env={"RT_TEST_DIE_AT_STEP": "12", "RT_TEST_DIE_RANK": "0"})
        files = event_files(tbk)
        check(r.returncode == -9 and len(files) == 1, f"killed run: signal 9 ({r.returncode}), one file")
        if files:
            versions, scalars, cut = read_events(pb, files[0])
            check(not cut and sorted({s for s, _, _ in scalars}) == [5, 10],
                  f"killed run: steps 5 and 10 flushed, whole ({sorted({s for s, _, _ in scalars})})")

        # 5. an unwritable --tensorboard: exit 2 before the first step
        open(p("plain"), "w").close()
        bad = p("plain/tb")
        for np_ in (0, 2):
            r = train(np_, "--model", "mlp:16,8,4", "--data", data, "--batch", "8", "--steps", "4",
                      "--tensorboard", bad, quiet=True)
            lines = [l for l in r.stderr.splitlines() if "--tensorboard" in l and p("plain") in l]
            check(r.returncode == 2 and lines and "Not a directory" in lines[0],
                  f"np={np_}: --tensorboard below a file: exit 2 ({r.returncode}) naming it: {lines}")
            check("step " not in r.stdout, f"np={np_}: refused before the first step")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
