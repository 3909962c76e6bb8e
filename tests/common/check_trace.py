#!/usr/bin/python3
"""check_trace.py - the --trace timeline files load as JSON in the Chrome
Trace Event Format: runs test_trace (its C checks must pass) in a temporary
directory, then parses what it wrote with Python's json module.

trace.json (closed, rank 3): every event has ph, pid, tid, ts (and dur for
"X"); pid is the rank; process_name says "rank 3"; each thread that traced
has a thread_name; names with quotes, backslashes, control characters and
UTF-8 come back exactly; the "overlap" spans of three threads overlap in
time; no event of three threads' ticks is lost; zero-length, no-category
and non-finite-time cases.

killed.json (rank 1, SIGKILLed before close): not JSON as it stands, but
JSON once "]" is appended, holding every event up to the last write.

usage: check_trace.py TEST_TRACE_EXE"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

checker = rt_testlib.Checks()
expect = checker.check

# test_trace.c spells the same names in C
NAMES = [
    "plain",
    'quote "q"',
    "back\\slash",
    "new\nline",
    "tab\tcr\r ctl\x01\x1f",
    "UTF-8 \u00fc\u00f1\u00ef \u2014 \u5c42 \U0001F680",
    "</script>",
]
WORKER_TICKS = 500
KILLED_BEFORE = 3000


def check_common(events, rank):
    """Fields every event needs for the viewers to place it."""
    for e in events:
        if not expect(all(k in e for k in ("ph", "pid", "tid", "ts", "name")),
                      f"ph, pid, tid, ts, name in {e}"):
            return
        if e["ph"] == "X":
            if not expect(isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0,
                          f"dur >= 0 in {e}"):
                return
        expect(e["pid"] == rank, f"pid {e['pid']} is the rank {rank}")
    meta = {e["name"]: e for e in events if e["ph"] == "M" and e["tid"] == 0}
    expect(meta.get("process_name", {}).get("args") == {"name": f"rank {rank}"},
           f"process_name is 'rank {rank}': {meta.get('process_name')}")
    expect(meta.get("process_sort_index", {}).get("args") == {"sort_index": rank},
           f"process_sort_index is {rank}")


def check_closed(path):
    with open(path, encoding="utf-8") as f:  # strict: invalid UTF-8 fails
        text = f.read()
    try:
        events = json.loads(text)
    except ValueError as e:
        expect(False, f"{path} is JSON: {e}")
        return
    expect(isinstance(events, list), "the JSON Array Format")
    check_common(events, 3)

    thread_names = {e["tid"]: e["args"]["name"] for e in events
                    if e["ph"] == "M" and e["name"] == "thread_name"}
    expect(sorted(thread_names.values()) == ["main", "worker 1", "worker 2"],
           f"thread names: {thread_names}")
    tid_of = {v: k for k, v in thread_names.items()}
    expect(len(tid_of) == 3 and tid_of.get("main") == 1,
           f"three distinct tids, main (which opened the trace) is 1: {tid_of}")
    spans = [e for e in events if e["ph"] == "X"]
    expect({e["tid"] for e in spans} <= set(thread_names),
           "every thread with spans is named")

    for thread, tid in sorted(tid_of.items()):
        got = [e["name"] for e in spans if e["tid"] == tid and e.get("cat") == "names"]
        expect(got == NAMES, f"{thread}: names round-trip exactly: {got!r}")
        got_idx = [e["args"] for e in spans if e["tid"] == tid and e.get("cat") == "names"]
        expect(got_idx == [{"index": i} for i in range(len(NAMES))],
               f"{thread}: integer args {got_idx}")
        ticks = [e["args"]["i"] for e in spans if e["tid"] == tid and e["name"] == "tick"]
        expect(ticks == list(range(WORKER_TICKS)),
               f"{thread}: {WORKER_TICKS} ticks in order, none lost ({len(ticks)})")

    overlap = [e for e in spans if e["name"] == "overlap"]
    expect(len({e["tid"] for e in overlap}) == 3, "an overlap span per thread")
    if overlap:
        latest_start = max(e["ts"] for e in overlap)
        earliest_end = min(e["ts"] + e["dur"] for e in overlap)
        expect(latest_start < earliest_end,
               f"spans of different threads overlap: {latest_start} < {earliest_end}")
        expect(all(e["ts"] >= 0 for e in spans), "ts are relative to the open, >= 0")
        expect(all(e["dur"] >= 1000 for e in overlap),
               "the overlap spans last their 2 ms sleep (microseconds)")
        expect(all(e["ts"] < 60e6 for e in spans), "ts are microseconds since the open")

    by_name = {e["name"]: e for e in spans}
    nocat = by_name.get("no cat", {})
    expect("cat" not in nocat and "args" not in nocat and abs(nocat.get("dur", 0) - 1000) < 1,
           f"no category, no args, 1 ms: {nocat}")
    expect(by_name.get("backwards", {}).get("dur") == 0, "t1 < t0 is written as zero length")
    expect("nan time" not in by_name and "inf time" not in by_name,
           "non-finite times drop the event")
    expect(by_name.get("big arg", {}).get("args") == {"max": 2**63 - 1}, "INT64_MAX arg")
    expect(by_name.get("small arg", {}).get("args") == {"min": -2**63}, "INT64_MIN arg")
    expect("" in by_name, "a NULL name is written as \"\"")


def check_killed(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    expect(text.startswith("[") and text.endswith("}"),
           "a killed run's file is the array without its closing bracket")
    try:
        json.loads(text)
        expect(False, "killed.json is not JSON without the bracket (else the test shows nothing)")
    except ValueError:
        pass
    # what chrome://tracing does with a file lacking the bracket
    try:
        events = json.loads(text + "]")
    except ValueError as e:
        expect(False, f"killed.json + ']' is JSON: {e}")
        return
    check_common(events, 1)
    names = [e["name"] for e in events if e["ph"] == "X"]
    expect(names.count("before") == KILLED_BEFORE,
           f"all {KILLED_BEFORE} events before the pause ({names.count('before')})")
    expect("after pause" in names,
           "an event after a second without writes was written at once")


with tempfile.TemporaryDirectory() as d:
    r = subprocess.run([sys.argv[1], d], capture_output=True, text=True, timeout=60)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    expect(r.returncode == 0, f"test_trace exits 0 (got {r.returncode})")
    for name, check in (("trace.json", check_closed), ("killed.json", check_killed)):
        path = os.path.join(d, name)
        if expect(os.path.exists(path), f"{name} written"):
            check(path)

sys.exit(checker.summary())
