"""gpt_reference.py - a nanoGPT-style GPT-2 in PyTorch, the oracle of
ringtrain's `gpt` model: the same architecture and the same state_dict
names (transformer.wte.weight, transformer.h.0.attn.c_attn.weight [3C, C],
..., lm_head.weight tied to wte), written from the GPT-2 paper and
nanoGPT's layout without a fused attention kernel (Debian's PyTorch 1.13),
in float64 or float32 as the caller chooses."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_spec(spec):
    """'gpt:layers=1,dim=48,heads=3,ctx=7[,vocab=256]' -> dict."""
    assert spec.startswith("gpt:"), spec
    cfg = {"vocab": 256}
    for kv in spec[4:].split(","):
        k, v = kv.split("=")
        cfg[k] = int(v)
    return cfg


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.heads
        q, k, v = [t.view(B, T, self.heads, hs).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = MLP(dim)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, layers, dim, heads, ctx, vocab=256):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, dim),
            wpe=nn.Embedding(ctx, dim),
            h=nn.ModuleList([Block(dim, heads) for _ in range(layers)]),
            ln_f=nn.LayerNorm(dim, eps=1e-5),
        ))
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def from_spec(spec, dtype=torch.float32):
    c = parse_spec(spec)
    return GPT(c["layers"], c["dim"], c["heads"], c["ctx"], c["vocab"]).to(dtype)


def param_names(model):
    """ringtrain's parameter order: the state_dict's, lm_head.weight (tied) left out."""
    return [n for n in model.state_dict() if n != "lm_head.weight"]


def load_packed(model, packed):
    """Sets the parameters from ringtrain's packed order (param_names)."""
    sd = model.state_dict()
    off = 0
    with torch.no_grad():
        for n in param_names(model):
            t = sd[n]
            t.copy_(torch.from_numpy(np.asarray(packed[off:off + t.numel()])).view_as(t).to(t.dtype))
            off += t.numel()
    assert off == len(packed), (off, len(packed))


def pack(model, grads=False):
    named = dict(model.named_parameters())
    out = []
    for n in param_names(model):
        p = named[n] if n in named else model.state_dict()[n]
        t = p.grad if grads else p
        out.append(t.detach().reshape(-1).double().numpy())
    return np.concatenate(out)
