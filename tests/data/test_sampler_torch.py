"""test_sampler_torch.py - our sampler against PyTorch's DistributedSampler,
and our permutation against the recipe in docs/FORMATS.md re-implemented
here in Python.

DistributedSampler(shuffle=False) over a dataset whose item i is our epoch
order[i] gives, per rank, the records torch would read given that order; the
incomplete last batch is then dropped as our docs say. (Our permutation comes
from our own generator, so the order itself is printed by the dump tool.)

usage: test_sampler_torch.py SAMPLER_DUMP
"""
import os
import subprocess
import sys

import torch
from torch.utils.data import DistributedSampler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rt_recipes import permutation  # noqa: E402


def dump(tool, n, world, batch, seed, epoch, mode, shuffle):
    out = subprocess.run([tool, str(n), str(world), str(batch), str(seed), str(epoch), mode,
                          str(int(shuffle))], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    order = [int(x) for x in lines[0].split()[1:]]
    steps = int(lines[1].split()[1])
    ranks = [[int(x) for x in line.split()[2:]] for line in lines[2:]]
    return order, steps, ranks


def main():
    tool = sys.argv[1]
    failures = 0
    cases = 0
    for n in (1, 5, 10, 97, 256):
        for world in (1, 2, 3, 4, 5):
            for batch in (1, 4):
                for mode in ("pad", "drop"):
                    drop_last = mode == "drop"
                    if drop_last and n < world:
                        continue
                    per_rank = len(list(DistributedSampler(range(n), num_replicas=world, rank=0,
                                                           shuffle=False, drop_last=drop_last)))
                    if per_rank // batch < 1:
                        continue
                    order, steps, ranks = dump(tool, n, world, batch, 1234, 2, mode, True)
                    assert sorted(order) == list(range(n)), "order is a permutation"
                    for r in range(world):
                        s = DistributedSampler(order, num_replicas=world, rank=r, shuffle=False,
                                               drop_last=drop_last)
                        want = [order[i] for i in s]
                        want = want[: len(want) // batch * batch]
                        cases += 1
                        if ranks[r] != want or steps != len(want) // batch:
                            failures += 1
                            print(f"FAIL n={n} world={world} batch={batch} {mode} rank {r}:"
                                  f" got {ranks[r][:12]} want {want[:12]}")
    # the permutation follows the documented recipe exactly
    for n, seed, epoch in ((1, 0, 0), (10, 1234, 2), (1000, 2**63 + 5, 7), (97, 42, 0)):
        order, _, _ = dump(tool, n, 1, 1, seed, epoch, "pad", True)
        cases += 1
        if order != permutation(seed, epoch, n):
            failures += 1
            print(f"FAIL permutation n={n} seed={seed} epoch={epoch} differs from the documented recipe")
    # evaluation order (no shuffle, no padding): the strided share, all records once
    for n, world in ((10, 4), (7, 3), (100, 8)):
        order, steps, ranks = dump(tool, n, world, 2, 0, 0, "partial", False)
        assert order == list(range(n))
        for r in range(world):
            cases += 1
            if ranks[r] != list(range(n))[r::world]:
                failures += 1
                print(f"FAIL partial n={n} world={world} rank {r}: {ranks[r]}")
        cases += 1
        if sorted(sum(ranks, [])) != list(range(n)):
            failures += 1
            print(f"FAIL partial n={n} world={world}: not every record exactly once")
    print(f"{cases - failures} passed, {failures} failed (torch {torch.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
