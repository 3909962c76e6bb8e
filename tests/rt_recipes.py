"""rt_recipes.py - ringtrain's documented recipes re-implemented in Python
from the docs' text, for the tests and benchmarks that compare against them:
the sample order of docs/FORMATS.md "Sample order" (SplitMix64-seeded
xoshiro256**, Fisher-Yates, the token window shift) and the learning-rate
schedule of docs/TRAINING.md. Written from the text, not from the C code,
so a test that checks the C code against them tests both."""
import math

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


class Xoshiro:
    """xoshiro256** seeded for (seed, epoch, stream) as the sampler seeds it:
    k1 = splitmix64(seed), k2 = splitmix64(k1 ^ epoch), state = four
    splitmix64 outputs from k2 ^ stream."""

    def __init__(self, seed, epoch, stream):
        _, k1 = splitmix64(seed & M64)
        _, k2 = splitmix64(k1 ^ (epoch & M64))
        x, self.s = k2 ^ stream, []
        for _ in range(4):
            x, out = splitmix64(x)
            self.s.append(out)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, b):
        """Uniform in [0, b) by rejection (no modulo bias)."""
        threshold = ((1 << 64) - b) % b
        while True:
            r = self.next()
            if r >= threshold:
                return r % b


def permutation(seed, epoch, n):
    """The epoch's shuffled order of n records: Fisher-Yates from the top
    with stream 0."""
    g = Xoshiro(seed, epoch, 0)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = g.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def token_shift(seed, epoch, ctx):
    """The shuffled token stream's window shift of the epoch (stream 1)."""
    return Xoshiro(seed, epoch, 1).next() % ctx


def schedule_lr(base, warmup, total, kind, s):
    """Step s (0-based): warmup base*(s+1)/W, then constant, or cosine
    base*(1+cos(pi*p))/2 with p = (s-W)/(total-W) (clamped to [0, 1])."""
    if s < warmup:
        return base * (s + 1) / warmup
    if kind == "constant":
        return base
    p = min(max((s - warmup) / (total - warmup), 0.0), 1.0) if total > warmup else 1.0
    return base * 0.5 * (1 + math.cos(math.pi * p))
