"""test_import_tokens.py - `ringtrain data import-tokens`: nanoGPT .bin and
llm.c shards made here with numpy (random tokens) import as the tokens of
the files concatenated in order (read back with h5py and compared token by
token), uint8 for a vocabulary of <= 256 and uint16 above, with the
attributes of docs/FORMATS.md; the held-out split is the last
round(total * X) tokens, as import-text does it; a file larger than one
read chunk streams correctly; every bad input exits 2 with one line naming
the file and the cause and leaves neither output nor a temporary file."""
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

RINGTRAIN = rt_testlib.ringtrain()
checker = rt_testlib.Checks()
check, failures = checker.check, checker.failures

LLMC_MAGIC, LLMC_VERSION, LLMC_HEADER = 20240520, 1, 1024
CHUNK_TOKENS = (8 << 20) // 2  # the importer's read chunk (IMPORT_CHUNK) in uint16 tokens


def run(*args):
    return subprocess.run([RINGTRAIN, "data", "import-tokens", *args], capture_output=True,
                          text=True)


def write_bin(path, toks):
    """nanoGPT: the tokens as little-endian uint16, nothing else."""
    np.asarray(toks, dtype="<u2").tofile(path)
    return path


def write_llmc(path, toks, magic=LLMC_MAGIC, version=LLMC_VERSION, count=None):
    """llm.c (dev/data/data_common.py): 256 little-endian int32 (magic,
    version, token count, zeros), then the tokens as little-endian uint16."""
    header = np.zeros(256, dtype="<i4")
    header[0], header[1] = magic, version
    header[2] = len(toks) if count is None else count
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(toks, dtype="<u2").tobytes())
    return path


def read_tokens(path):
    with h5py.File(path, "r") as f:
        return f["tokens"][...]


def check_file(path, want, vocab, what):
    with h5py.File(path, "r") as f:
        t = f["tokens"]
        dtype = np.uint8 if vocab <= 256 else np.uint16
        check(t.dtype == dtype and t.shape == (len(want),), f"{what}: tokens {t.dtype} {t.shape}")
        check(np.array_equal(t[...], want), f"{what}: every token as written")
        check(f.attrs["format"] == "ringtrain-dataset" and int(f.attrs["format_version"]) == 1,
              f"{what}: format attrs")
        check(f.attrs["kind"] == "tokens" and int(f.attrs["vocab_size"]) == vocab,
              f"{what}: kind {f.attrs['kind']} vocab {f.attrs['vocab_size']}")
        check(int(f.attrs["num_tokens"]) == len(want), f"{what}: num_tokens")
        check(t.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS, f"{what}: contiguous")


def main():
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory(dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        p = lambda name: os.path.join(tmp, name)

        # GPT-2's vocabulary: uint16 output, several inputs in order, both formats
        vocab = 50257
        parts = [rng.integers(0, vocab, n, dtype=np.uint16) for n in (1000, 1, 777)]
        parts[0][:2] = [0, vocab - 1]  # the extremes
        whole = np.concatenate(parts)
        bins = [write_bin(p(f"part{i}.bin"), t) for i, t in enumerate(parts)]
        shards = [write_llmc(p(f"shard{i}.bin"), t) for i, t in enumerate(parts)]
        for fmt, files in (("bin", bins), ("llmc", shards)):
            args = [a for f in files for a in ("--input", f)]
            r = run(*args, "--format", fmt, "--vocab", str(vocab), "--out", p(f"{fmt}.h5"))
            check(r.returncode == 0, f"{fmt} import: {r.stderr}")
            check(f"{len(whole)} tokens" in r.stdout, f"{fmt} prints the count: {r.stdout!r}")
            check_file(p(f"{fmt}.h5"), whole, vocab, f"{fmt} vocab {vocab}")
        # the order given is the order stored
        r = run("--input", bins[2], "--input", bins[0], "--format", "bin", "--vocab", str(vocab),
                "--out", p("reversed.h5"))
        check(r.returncode == 0, f"reversed import: {r.stderr}")
        check_file(p("reversed.h5"), np.concatenate([parts[2], parts[0]]), vocab, "reversed")

        # a byte-level vocabulary: uint8 output
        small = [rng.integers(0, 256, n, dtype=np.uint16) for n in (300, 4000)]
        small[0][:2] = [0, 255]
        sb = [write_bin(p(f"small{i}.bin"), t) for i, t in enumerate(small)]
        sl = [write_llmc(p(f"small{i}.llmc"), t) for i, t in enumerate(small)]
        r = run("--input", sb[0], "--input", sb[1], "--format", "bin", "--vocab", "256",
                "--out", p("small-bin.h5"))
        check(r.returncode == 0, f"small bin import: {r.stderr}")
        check_file(p("small-bin.h5"), np.concatenate(small), 256, "bin vocab 256")
        r = run("--input", sl[0], "--input", sl[1], "--format", "llmc", "--vocab", "256",
                "--out", p("small-llmc.h5"))
        check(r.returncode == 0, f"small llmc import: {r.stderr}")
        check_file(p("small-llmc.h5"), np.concatenate(small), 256, "llmc vocab 256")
        # the ends of the vocabulary range
        one = write_bin(p("zeros.bin"), np.zeros(5, np.uint16))
        r = run("--input", one, "--format", "bin", "--vocab", "1", "--out", p("v1.h5"))
        check(r.returncode == 0, f"vocab 1: {r.stderr}")
        check_file(p("v1.h5"), np.zeros(5, np.uint16), 1, "vocab 1")
        top = write_bin(p("top.bin"), [65535, 0, 65534])
        r = run("--input", top, "--format", "bin", "--vocab", "65536", "--out", p("v65536.h5"))
        check(r.returncode == 0, f"vocab 65536: {r.stderr}")
        check_file(p("v65536.h5"), np.array([65535, 0, 65534]), 65536, "vocab 65536")
        info = subprocess.run([RINGTRAIN, "data", "info", p("llmc.h5")], capture_output=True,
                              text=True)
        check(info.returncode == 0 and f"token count: {len(whole)}" in info.stdout
              and f"vocab size: {vocab}" in info.stdout and f"tokens: uint16 [{len(whole)}]"
              in info.stdout, f"info: {info.stdout} {info.stderr}")

        # the validation split: import-text's, the last round(total * X) tokens
        for fmt, files in (("bin", bins), ("llmc", shards)):
            args = [a for f in files for a in ("--input", f)]
            r = run(*args, "--format", fmt, "--vocab", str(vocab), "--out", p(f"tr-{fmt}.h5"),
                    "--val-out", p(f"va-{fmt}.h5"), "--val-fraction", "0.1")
            check(r.returncode == 0, f"{fmt} split import: {r.stderr}")
            nval = math.floor(len(whole) * 0.1 + 0.5)
            check(f"{len(whole) - nval} tokens" in r.stdout and f"{nval} tokens" in r.stdout,
                  f"{fmt} split counts printed: {r.stdout!r}")
            check_file(p(f"tr-{fmt}.h5"), whole[:-nval], vocab, f"{fmt} train part")
            check_file(p(f"va-{fmt}.h5"), whole[-nval:], vocab, f"{fmt} val part")
        # the same split as import-text: token i of a bytes stream lands where byte i does
        stream = rng.integers(0, 256, 5001, dtype=np.uint16)
        write_bin(p("stream.bin"), stream)
        with open(p("stream.txt"), "wb") as f:
            f.write(stream.astype(np.uint8).tobytes())
        r1 = run("--input", p("stream.bin"), "--format", "bin", "--vocab", "256", "--out",
                 p("tok-tr.h5"), "--val-out", p("tok-va.h5"), "--val-fraction", "0.3")
        r2 = subprocess.run([RINGTRAIN, "data", "import-text", "--input", p("stream.txt"), "--out",
                             p("txt-tr.h5"), "--val-out", p("txt-va.h5"), "--val-fraction",
                             "0.3"], capture_output=True, text=True)
        check(r1.returncode == 0 and r2.returncode == 0, f"text vs tokens: {r1.stderr} {r2.stderr}")
        for a, b in (("tok-tr.h5", "txt-tr.h5"), ("tok-va.h5", "txt-va.h5")):
            check(np.array_equal(read_tokens(p(a)), read_tokens(p(b))),
                  f"{a} == {b} (import-text's split)")

        # larger than one read chunk, split inside the second chunk
        big = rng.integers(0, vocab, CHUNK_TOKENS + 12345, dtype=np.uint16)
        write_llmc(p("big.llmc"), big)
        r = run("--input", p("big.llmc"), "--input", shards[1], "--format", "llmc", "--vocab",
                str(vocab), "--out", p("big-tr.h5"), "--val-out", p("big-va.h5"),
                "--val-fraction", "0.001")
        check(r.returncode == 0, f"big import: {r.stderr}")
        bigwhole = np.concatenate([big, parts[1]])
        nval = math.floor(len(bigwhole) * 0.001 + 0.5)
        check_file(p("big-tr.h5"), bigwhole[:-nval], vocab, "big train part")
        check_file(p("big-va.h5"), bigwhole[-nval:], vocab, "big val part")

        # bad input: exit 2, one line naming the file and the cause, no output left
        out, val = p("x.h5"), p("v.h5")

        def bad(args, culprit, words):
            r = run(*args)
            msg = r.stderr.strip()
            what = f"{[os.path.basename(a) for a in args]}"
            check(r.returncode == 2, f"{what}: exit {r.returncode} {msg!r}")
            check(len(msg.splitlines()) == 1, f"{what}: one line, got {msg!r}")
            check(msg.startswith("ringtrain data import-tokens: "), f"{what}: prefix {msg!r}")
            if culprit:
                check(os.path.basename(culprit) in msg, f"{what}: file not named in {msg!r}")
            for w in words:
                check(w in msg, f"{what}: {w!r} not in {msg!r}")
            for o in (out, val):
                check(not os.path.exists(o), f"{what}: {o} left behind")
            left = [x for x in os.listdir(tmp) if ".tmp." in x]
            check(not left, f"{what}: temporary files left: {left}")

        def bad_files(fmt, files, culprit, *words, vocab=vocab):
            args = [a for f in files for a in ("--input", f)]
            bad([*args, "--format", fmt, "--vocab", str(vocab), "--out", out, "--val-out", val,
                 "--val-fraction", "0.2"], culprit, list(words))

        toks = rng.integers(0, 256, 100, dtype=np.uint16)
        m = write_llmc(p("magic.llmc"), toks, magic=20240521)
        bad_files("llmc", [shards[0], m], m, "bad magic 20240521", "20240520")
        bad_files("llmc", [bins[0]], bins[0], "bad magic", "--format bin")  # a nanoGPT file
        m = write_llmc(p("llama3.llmc"), toks, magic=20240801, version=7)
        bad_files("llmc", [m], m, "bad magic 20240801", "LLaMA-3")
        m = write_llmc(p("v2.llmc"), toks, version=2)
        bad_files("llmc", [m], m, "unsupported version 2")
        m = write_llmc(p("count-more.llmc"), toks, count=101)
        bad_files("llmc", [m], m, "header token count 101", "does not match", "200 bytes")
        m = write_llmc(p("count-less.llmc"), toks, count=99)
        bad_files("llmc", [m], m, "header token count 99", "does not match")
        m = write_llmc(p("count-neg.llmc"), toks, count=-100)
        bad_files("llmc", [m], m, "header token count -100", "does not match")
        with open(p("odd.llmc"), "wb") as f:
            f.write(open(shards[0], "rb").read() + b"\x00")
        bad_files("llmc", [p("odd.llmc")], p("odd.llmc"), "does not match")
        m = write_llmc(p("zero.llmc"), [])
        bad_files("llmc", [shards[0], m], m, "empty shard")
        with open(p("header-cut.llmc"), "wb") as f:
            f.write(open(shards[0], "rb").read()[:500])
        bad_files("llmc", [p("header-cut.llmc")], p("header-cut.llmc"), "truncated header",
                  "500 bytes")
        with open(p("odd.bin"), "wb") as f:
            f.write(b"\x01\x00\x02")
        bad_files("bin", [bins[0], p("odd.bin")], p("odd.bin"), "odd byte count 3")
        open(p("empty.bin"), "wb").close()
        bad_files("bin", [bins[0], p("empty.bin")], p("empty.bin"), "empty file")
        bad_files("llmc", [p("empty.bin")], p("empty.bin"), "empty file")
        bad_files("bin", [p("absent.bin")], p("absent.bin"), "No such file")
        bad_files("bin", [tmp], tmp, "not a regular file")

        # a token outside the vocabulary: the value, where, and which file; the
        # outputs were already being written when it was met, and go
        t = np.array(parts[2])
        t[500] = vocab
        b = write_bin(p("oov.bin"), t)
        bad_files("bin", [bins[0], b], b, f"token {vocab} at byte offset 1000 (token 500")
        m = write_llmc(p("oov.llmc"), t)
        bad_files("llmc", [shards[0], m], m,
                  f"token {vocab} at byte offset {1024 + 1000} (token 500", f"--vocab {vocab}")
        bad_files("bin", [bins[0]], bins[0], f"token {vocab - 1} at byte offset 2 (token 1 ",
                  vocab=vocab - 1)
        bad_files("bin", [sb[0]], sb[0], "token 255 at byte offset 2", "--vocab 255", vocab=255)
        t = np.array(big)
        t[CHUNK_TOKENS + 7] = 60000
        m = write_llmc(p("big-oov.llmc"), t)
        at = CHUNK_TOKENS + 7
        bad_files("llmc", [m], m, f"token 60000 at byte offset {1024 + 2 * at} (token {at} ")
        os.remove(m)

        # flags
        good = ["--input", bins[0], "--format", "bin", "--out", out]
        for v in ("0", "65537", "-1"):
            bad([*good, "--vocab", v], None, ["--vocab", "1..65536", v])
        bad([*good, "--vocab", "abc"], None, ["--vocab"])
        bad(["--input", bins[0], "--format", "bin", "--out", out], None, ["--vocab"])
        bad(["--input", bins[0], "--format", "npy", "--vocab", "9", "--out", out], None,
            ["--format", "npy"])
        bad([*good, "--vocab", str(vocab), "--bogus", "1"], None, ["unknown flag"])
        bad([*good, "--vocab", str(vocab), "--val-fraction", "0.1"], None, ["go together"])
        bad([*good, "--vocab", str(vocab), "--val-out", val], None, ["go together"])
        bad([*good, "--vocab", str(vocab), "--val-out", val, "--val-fraction", "1.5"], None,
            ["val-fraction", "1.5"])
        bad([*good, "--vocab", str(vocab), "--val-out", val, "--val-fraction", "0.0001"], None,
            ["empty training or validation", "1000 tokens"])
        bad([*good, "--vocab", str(vocab), "--val-out", out, "--val-fraction", "0.5"], out,
            ["same file"])
        bad([*good, "--vocab", str(vocab), "--val-out", p("nodir/v.h5"), "--val-fraction",
             "0.5"], p("nodir/v.h5"), ["cannot create"])
        r = run("--help")
        check(r.returncode == 0 and "--format" in r.stdout and "--vocab" in r.stdout,
              f"--help: exit {r.returncode}")
        r = subprocess.run([RINGTRAIN, "data", "--help"], capture_output=True, text=True)
        check(r.returncode == 0 and "import-tokens" in r.stdout, "data --help lists import-tokens")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
