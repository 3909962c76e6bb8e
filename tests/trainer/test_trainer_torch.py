#!/usr/bin/env python3
"""PyTorch CPU parity of trainer/: every op (the transformer's included),
the whole MLP's loss and gradients, nn.Linear-style initialisation, and
20-step training runs with SGD-momentum and AdamW (weight decay, warmup,
cosine schedule, clipping), through tests/trainer/trainer_driver with the
same weights and batches.

Tolerance: 1e-4 relative, per tensor: max|ours - torch| <= 1e-4 * max|torch|
(elementwise relative error is meaningless for entries that are ~0).
Usage: test_trainer_torch.py PATH/trainer_driver"""
import math, os, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rt_recipes import schedule_lr  # noqa: E402

DRIVER = sys.argv[1]
RTOL = 1e-4
failures = []
checks = 0


def check(name, ours, ref, rtol=RTOL):
    global checks
    checks += 1
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        failures.append(f"{name}: shape {ours.shape} != {ref.shape}")
        return
    nan = np.isnan(ref)
    if not np.array_equal(nan, np.isnan(ours)):
        failures.append(f"{name}: NaN in different places")
        return
    ours, ref = ours[~nan], ref[~nan]
    scale = max(np.max(np.abs(ref)), 1e-30)
    err = np.max(np.abs(ours - ref)) / scale
    if not np.isfinite(err) or err > rtol:
        failures.append(f"{name}: relative error {err:.3e} > {rtol:g}")
    else:
        print(f"ok {name}: {err:.2e}")


def run(mode, d, *args):
    cmd = [DRIVER, mode, "--dir", d] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"driver failed: {' '.join(cmd)}\n{r.stderr}")


def put(d, name, arr, dtype=np.float32):
    np.ascontiguousarray(arr, dtype=dtype).tofile(os.path.join(d, name))


def get(d, name, dtype=np.float32):
    return np.fromfile(os.path.join(d, name), dtype=dtype)


def make_mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def pack(model):
    return np.concatenate([t.detach().numpy().ravel() for l in linears(model)
                           for t in (l.weight, l.bias)])


def pack_grads(model):
    return np.concatenate([t.grad.numpy().ravel() for l in linears(model)
                           for t in (l.weight, l.bias)])


def unpack(model, flat):
    off = 0
    with torch.no_grad():
        for l in linears(model):
            for t in (l.weight, l.bias):
                n = t.numel()
                t.copy_(torch.from_numpy(flat[off:off + n].reshape(t.shape)))
                off += n


def test_ops(d, g):
    B, C, OC = 9, 37, 13
    inp, w, b = torch.randn(B, C, generator=g), torch.randn(OC, C, generator=g), torch.randn(OC, generator=g)
    dout = torch.randn(B, OC, generator=g)
    for n, t in (("inp", inp), ("weight", w), ("bias", b), ("dout", dout)):
        put(d, n, t.numpy())
    run("op-linear", d, "--B", B, "--C", C, "--OC", OC)
    ti, tw, tb = (t.clone().requires_grad_() for t in (inp, w, b))
    out = F.linear(ti, tw, tb)
    out.backward(dout)
    check("linear out", get(d, "out").reshape(B, OC), out.detach())
    check("linear dinp", get(d, "dinp").reshape(B, C), ti.grad)
    check("linear dweight", get(d, "dweight").reshape(OC, C), tw.grad)
    check("linear dbias", get(d, "dbias"), tb.grad)

    N = 1000
    x = torch.randn(N, generator=g)
    x[::50] = 0.0  # the kink: PyTorch's ReLU gradient at 0 is 0
    x[7] = float("nan")  # NaN passes through forward, its gradient is 0
    dout = torch.randn(N, generator=g)
    put(d, "inp", x.numpy()); put(d, "dout", dout.numpy())
    run("op-relu", d, "--N", N)
    tx = x.clone().requires_grad_()
    out = torch.relu(tx)
    out.backward(dout)
    check("relu out", get(d, "out"), out.detach())
    check("relu dinp", get(d, "dinp"), tx.grad)

    B, V = 17, 11
    logits = torch.randn(B, V, generator=g) * 4
    logits[0, 3] = 80.0  # large logits: the stable log-softmax must not overflow
    labels = torch.randint(0, V, (B,), generator=g)
    put(d, "logits", logits.numpy()); put(d, "labels", labels.numpy(), np.int32)
    run("op-xent", d, "--B", B, "--V", V)
    tl = logits.clone().requires_grad_()
    losses = F.cross_entropy(tl, labels, reduction="none")
    losses.mean().backward()
    check("xent losses", get(d, "losses"), losses.detach())
    check("xent probs", get(d, "probs").reshape(B, V), torch.softmax(logits, 1))
    check("xent dlogits", get(d, "dlogits").reshape(B, V), tl.grad)
    correct = int(get(d, "correct", np.int64)[0])
    want = int((logits.argmax(1) == labels).sum())
    global checks
    checks += 1
    if correct != want:
        failures.append(f"accuracy count {correct} != {want}")


def test_transformer_ops(d, g):
    """LayerNorm, tanh GELU, causal attention and the embeddings against
    PyTorch's own (F.layer_norm, F.gelu, softmax with a -inf mask,
    indexing), odd sizes, gradients by autograd."""
    N, C = 37, 53
    x = torch.randn(N, C, generator=g) * 2 + 0.5
    x[3] = x[3] * 1e-3  # variance below eps: where eps goes matters
    w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
    dout = torch.randn(N, C, generator=g)
    for n, t in (("inp", x), ("weight", w), ("bias", b), ("dout", dout)):
        put(d, n, t.numpy())
    run("op-layernorm", d, "--N", N, "--C", C)
    tx, tw, tb = (t.clone().requires_grad_() for t in (x, w, b))
    out = F.layer_norm(tx, (C,), tw, tb, 1e-5)
    out.backward(dout)
    var, mean = torch.var_mean(x, dim=1, unbiased=False)
    check("layernorm out", get(d, "out").reshape(N, C), out.detach())
    check("layernorm mean", get(d, "mean"), mean)
    check("layernorm rstd", get(d, "rstd"), 1 / torch.sqrt(var + 1e-5))
    check("layernorm dinp", get(d, "dinp").reshape(N, C), tx.grad)
    check("layernorm dweight", get(d, "dweight"), tw.grad)
    check("layernorm dbias", get(d, "dbias"), tb.grad)

    N = 1001
    x = torch.randn(N, generator=g) * 1.5
    x[:6] = torch.tensor([-60.0, -12.0, 0.0, 12.0, 60.0, 3.5])  # tanh saturated
    dout = torch.randn(N, generator=g)
    put(d, "inp", x.numpy()); put(d, "dout", dout.numpy())
    run("op-gelu", d, "--N", N)
    tx = x.clone().requires_grad_()
    out = F.gelu(tx, approximate="tanh")
    out.backward(dout)
    # The erf GELU differs from the tanh one by 8e-5 of the output's scale
    # (|x| <= 6): 1e-5 tells them apart, 1e-4 would not; the saturated
    # entries apart, or their scale of 60 would hide the rest.
    ours, ours_d = get(d, "out"), get(d, "dinp")
    check("gelu out", ours[6:], out.detach()[6:], 1e-5)
    check("gelu out, |x| large", ours[:6], out.detach()[:6])
    check("gelu dinp", ours_d[6:], tx.grad[6:])
    check("gelu dinp, |x| large", ours_d[:6], tx.grad[:6])

    for B, T, C, NH in ((3, 11, 24, 4), (2, 1, 6, 2), (1, 7, 9, 1)):
        qkv = torch.randn(B, T, 3 * C, generator=g)
        dout = torch.randn(B, T, C, generator=g)
        put(d, "dims", np.array([B, T, C, NH]), np.int32)
        put(d, "qkv", qkv.numpy()); put(d, "dout", dout.numpy())
        run("op-attention", d)
        tq = qkv.clone().requires_grad_()
        hs = C // NH
        q, k, v = (t.reshape(B, T, NH, hs).transpose(1, 2) for t in tq.split(C, dim=2))
        scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        att = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        out = (att @ v).transpose(1, 2).reshape(B, T, C)
        out.backward(dout)
        tag = f"attention B={B} T={T} C={C} NH={NH}"
        check(f"{tag} out", get(d, "out").reshape(B, T, C), out.detach())
        check(f"{tag} att", get(d, "att").reshape(B, NH, T, T), att.detach())
        check(f"{tag} dqkv", get(d, "dqkv").reshape(B, T, 3 * C), tq.grad)

    B, T, C, V = 4, 9, 20, 13
    tokens = torch.randint(0, V - 2, (B, T), generator=g)  # repeats; V-2, V-1 unused
    tokens[0, :3] = 5  # one token three times in a row
    wte, wpe = torch.randn(V, C, generator=g), torch.randn(T, C, generator=g)
    dout = torch.randn(B, T, C, generator=g)
    put(d, "dims", np.array([B, T, C, V]), np.int32)
    put(d, "tokens", tokens.numpy(), np.int32)
    put(d, "wte", wte.numpy()); put(d, "wpe", wpe.numpy()); put(d, "dout", dout.numpy())
    run("op-embedding", d)
    te, pe = wte.clone().requires_grad_(), wpe.clone().requires_grad_()
    out = F.embedding(tokens, te) + pe[torch.arange(T)]
    out.backward(dout)
    check("embedding out", get(d, "out").reshape(B, T, C), out.detach())
    check("embedding dwte", get(d, "dwte").reshape(V, C), te.grad)
    check("embedding dwpe", get(d, "dwpe").reshape(T, C), pe.grad)


def test_mlp_grad(d, g, sizes, B):
    spec = "mlp:" + ",".join(map(str, sizes))
    model = make_mlp(sizes)
    x = torch.rand(B, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (B,), generator=g)
    put(d, "params", pack(model)); put(d, "inputs", x.numpy()); put(d, "labels", y.numpy(), np.int32)
    run("mlp-grad", d, "--spec", spec, "--B", B)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    check(f"{spec} loss", get(d, "loss", np.float64), [loss.item()])
    ours, ref = get(d, "grads"), pack_grads(model)
    off = 0
    for i, l in enumerate(linears(model)):
        for n, t in (("weight", l.weight), ("bias", l.bias)):
            k = t.numel()
            check(f"{spec} fc{i + 1}.{n} grad", ours[off:off + k], ref[off:off + k])
            off += k


def test_init(d):
    sizes = [300, 200, 10]
    run("init", d, "--spec", "mlp:300,200,10", "--seed", 7)
    a = get(d, "params")
    run("init", d, "--spec", "mlp:300,200,10", "--seed", 7)
    b = get(d, "params")
    run("init", d, "--spec", "mlp:300,200,10", "--seed", 8)
    c = get(d, "params")
    global checks
    checks += 3
    if not np.array_equal(a, b):
        failures.append("init is not deterministic for a seed")
    if np.array_equal(a, c):
        failures.append("init ignores the seed")
    off = 0
    for i in range(len(sizes) - 1):
        bound = 1 / math.sqrt(sizes[i])
        for n, k in (("weight", sizes[i] * sizes[i + 1]), ("bias", sizes[i + 1])):
            t = a[off:off + k]
            off += k
            checks += 1
            # U(-b, b): inside the bound, mean 0 and std b/sqrt(3) (5 sigma)
            mean_tol = 5 * bound / math.sqrt(3) / math.sqrt(k)
            ok = (np.max(np.abs(t)) <= bound and abs(t.mean()) <= mean_tol and
                  (k < 1000 or abs(t.std() / (bound / math.sqrt(3)) - 1) < 0.02) and
                  np.max(np.abs(t)) > 0.9 * bound)
            if not ok:
                failures.append(f"init fc{i + 1}.{n}: not U(-{bound:.4f}, {bound:.4f}): "
                                f"max {np.max(np.abs(t)):.4f} mean {t.mean():.2e} std {t.std():.4f}")


def test_training(d, g, sizes, B, steps, optimizer, lr, momentum=0.0, wd=0.0, warmup=0,
                  schedule="constant", clip=0.0, accum=1):
    spec = "mlp:" + ",".join(map(str, sizes))
    model = make_mlp(sizes)
    x = torch.rand(steps * accum * B, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (steps * accum * B,), generator=g)
    put(d, "params", pack(model)); put(d, "inputs", x.numpy()); put(d, "labels", y.numpy(), np.int32)
    run("train", d, "--spec", spec, "--B", B, "--steps", steps, "--accum", accum,
        "--optimizer", optimizer, "--lr", lr, "--momentum", momentum, "--weight-decay", wd,
        "--warmup", warmup, "--schedule", schedule, "--grad-clip", clip)
    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    losses, norms, clipped = [], [], 0
    G = accum * B  # the global batch: one torch step sees all of it
    for s in range(steps):
        for group in opt.param_groups:
            group["lr"] = schedule_lr(lr, warmup, steps, schedule, s)
        opt.zero_grad()
        loss = F.cross_entropy(model(x[s * G:(s + 1) * G]), y[s * G:(s + 1) * G])
        loss.backward()
        if clip > 0:
            norm = nn.utils.clip_grad_norm_(model.parameters(), clip)
            clipped += norm.item() > clip
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        losses.append(loss.item()); norms.append(norm.item())
        opt.step()
    tag = f"{spec} {optimizer} B={B}x{accum}"
    ours = get(d, "losses", np.float64)
    for s in range(steps):
        check(f"{tag} step {s + 1} loss", [ours[s]], [losses[s]])
    check(f"{tag} grad norms", get(d, "grad_norms", np.float64), norms)
    check(f"{tag} lrs", get(d, "lrs", np.float64),
          [schedule_lr(lr, warmup, steps, schedule, s) for s in range(steps)], 1e-6)
    check(f"{tag} final params", get(d, "params_out"), pack(model), 1e-3)
    if clip > 0:
        global checks
        checks += 1
        if clipped == 0:
            failures.append(f"{tag}: clipping was never active; the test would not see it")


def main():
    torch.manual_seed(1234)
    g = torch.Generator().manual_seed(99)
    with tempfile.TemporaryDirectory() as d:
        test_ops(d, g)
        test_transformer_ops(d, g)
        test_mlp_grad(d, g, [20, 32, 16, 5], 8)
        test_mlp_grad(d, g, [784, 64, 10], 33)
        test_mlp_grad(d, g, [7, 3], 4)  # a single layer (no ReLU)
        test_init(d)
        test_training(d, g, [784, 64, 32, 10], 32, 20, "sgd", 0.05, momentum=0.9, wd=1e-4)
        test_training(d, g, [784, 64, 32, 10], 32, 20, "adamw", 3e-3, wd=0.05, warmup=5,
                      schedule="cosine", clip=0.5)
        # accumulation: 4 micro-batches of 8 against one torch batch of 32
        test_training(d, g, [784, 64, 32, 10], 8, 20, "adamw", 3e-3, wd=0.05, warmup=5,
                      schedule="cosine", clip=0.5, accum=4)
        test_training(d, g, [784, 64, 32, 10], 8, 20, "sgd", 0.05, momentum=0.9, accum=4,
                      schedule="cosine", warmup=3)
    for f in failures:
        print("FAIL", f)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
