"""test_gpu_e2e_tmp.py - test_train_cuda_e2e.py leaves nothing in the
temporary directory. It runs the script (argv[1]) with TMPDIR set to an
empty directory of its own and CUDA_VISIBLE_DEVICES="" (so it always takes
its no-GPU path: the exit-2 check, then skip, exit 77), and checks that
the script ended with 0 or 77 and that the directory is empty afterwards:
before, every run left its 4 MB rt-gpu-e2e-* folder behind, skips too.
Runs in every build (the GPU test itself is only registered with CUDA)."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rt_testlib  # noqa: E402

checker = rt_testlib.Checks(show_ok=True)
check = checker.check


def main():
    script = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="rt-gpu-e2e-tmp-check-",
                                     dir=os.environ.get("RT_BINARY_DIR")) as tmp:
        env = {**os.environ, "TMPDIR": tmp, "CUDA_VISIBLE_DEVICES": ""}
        r = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                           timeout=240)
        check(r.returncode == 77,
              f"{os.path.basename(script)} without a visible GPU: exit {r.returncode} (want 77) "
              f"{(r.stdout + r.stderr).strip()[-400:]}")
        left = sorted(os.listdir(tmp))
        check(not left, f"nothing left in its temporary directory (found {left})")
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main())
