"""test_sampler_torch.py - our sampler against PyTorch's DistributedSampler,
and our permutation against the recipe in docs/FORMATS.md re-implemented
here in Python.

DistributedSampler(shuffle=False) over a dataset whose item i is our epoch
order[i] gives, per rank, the records torch would read given that order; the
incomplete last batch is then dropped as our docs say. (Our permutation comes
from our own generator, so the order itself is printed by the dump tool.)

usage: test_sampler_torch.py SAMPLER_DUMP
"""
import subprocess
import sys

import torch
from torch.utils.data import DistributedSampler


M64 = (1 << 64) - 1


def splitmix64(x):
    """One splitmix64 step: returns (new state, output)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def permutation(seed, epoch, n):
    """The recipe of docs/FORMATS.md "Sample order", written from the text."""
    _, k1 = splitmix64(seed)
    _, k2 = splitmix64(k1 ^ epoch)
    x, s = k2 ^ 0, []
    for _ in range(4):
        x, out = splitmix64(x)
        s.append(out)

    def nxt():
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(b):
        threshold = ((1 << 64) - b) % b
        while True:
            r = nxt()
            if r >= threshold:
                return r % b

    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


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
