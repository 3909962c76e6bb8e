#!/usr/bin/env python3
# bench/torch_peer.py - the PyTorch peer of the training benchmarks
# (bench/train_throughput.sh, bench/gpu_train_vs_torch.sh): the same
# workloads as ringtrain, timed the same way, in the same run.
"""PyTorch peer for ringtrain's training benchmarks.

Times one training step (forward, backward, optimizer) of the same workloads
that ringtrain trains, so a benchmark can run both in one go and print the
ratio. Works with Debian's python3-torch on the CPU (1.13) and with PyTorch 2.x
on a GPU machine. Prints one JSON object per case on stdout.

  torch_peer.py mlp --sizes 784,1024,1024,10 --batch 512 [--threads 2]
  torch_peer.py gpt --layers 6 --dim 384 --heads 6 --ctx 256 --vocab 256 --batch 8
  add --device cuda --compile on a GPU machine; --optimizer sgd|adamw
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def median_step_seconds(step, iters, warmup, cuda):
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record(); step(); end.record(); torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = [t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v)]
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch 1.x: explicit causal attention
            a = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            y = a.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, layers, dim, heads):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(ctx, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.lnf = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied, as in GPT-2

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.lnf(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=["mlp", "gpt"])
    p.add_argument("--sizes", default="784,1024,1024,10")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="adamw")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")
    p.add_argument("--iters", type=int, default=0)
    a = p.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    torch.manual_seed(0)
    if a.model == "mlp":
        sizes = [int(s) for s in a.sizes.split(",")]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers).to(a.device)
        x = torch.randn(a.batch, sizes[0], device=a.device)
        y = torch.randint(0, sizes[-1], (a.batch,), device=a.device)
        loss_fn = lambda m: F.cross_entropy(m(x), y)
        items, unit = a.batch, "samples_per_s"
    else:
        model = GPT(a.vocab, a.ctx, a.layers, a.dim, a.heads).to(a.device)
        idx = torch.randint(0, a.vocab, (a.batch, a.ctx), device=a.device)
        tgt = torch.randint(0, a.vocab, (a.batch, a.ctx), device=a.device)
        loss_fn = lambda m: m(idx, tgt)
        items, unit = a.batch * a.ctx, "tokens_per_s"

    fused = {"fused": True} if cuda and hasattr(torch.optim.AdamW, "__init__") and torch.__version__ >= "2" else {}
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **fused)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    fwd = torch.compile(model) if a.compile else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = loss_fn(fwd)
        loss.backward()
        opt.step()

    iters = a.iters or (100 if cuda else 10)
    sec = median_step_seconds(step, iters, 10 if cuda else 2, cuda)
    params = sum(t.numel() for t in model.parameters())
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "model": a.model, "device": a.device,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        "threads": torch.get_num_threads(), "batch": a.batch, "params": params,
        "compile": a.compile, "bf16": a.bf16, "optimizer": a.optimizer,
        "step_ms": sec * 1e3, unit: items / sec,
    }))


if __name__ == "__main__":
    main()
