#!/usr/bin/env python3
"""gpt_learning_torch.py - the PyTorch side of bench/gpt_learning.sh.

  train    trains tests/trainer/gpt_reference.GPT (nanoGPT's GPT-2, float32)
           from ringtrain's packed initial parameters (trainer_driver init),
           on the batches `ringtrain train` takes at each step (the shuffled
           sampler of docs/FORMATS.md, "Sample order" and "Token streams",
           re-implemented here; --no-shuffle: file order), with ringtrain's
           recipe (docs/TRAINING.md): the global batch's mean cross-entropy,
           clip_grad_norm_, the warmup + cosine schedule, AdamW (0.9, 0.999,
           eps 1e-8) with decoupled weight decay on the 2-D weights only
           (embeddings included) and none on biases and LayerNorm
           parameters; writes ringtrain-style metrics lines (the loss: the
           mean over the steps since the last line) and prints a JSON object
           with the validation loss, computed as `ringtrain eval` computes
           it (every window of the unshuffled stream, every position).
  eval     the same validation loss of a ringtrain parameters file
           (`train --export-params`, or a checkpoint), in PyTorch.
  report   ringtrain's and PyTorch's training losses side by side, the two
           validation losses, the sample and how many of its words are
           English words; one JSON line at the end.

Run with --help after a subcommand for its options. Needs torch, numpy and
h5py."""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "trainer"))
import gpt_reference as ref  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from rt_recipes import permutation, schedule_lr, token_shift  # noqa: E402


class TokenBatches:
    """The windows of each global step of `ringtrain train` on a tokens set:
    windows of ctx+1 tokens on a grid of step ctx from a per-epoch shift,
    ordered by the epoch's permutation; the drop remainder (training); global
    step s of an epoch reads order positions [s*B*W, (s+1)*B*W) (rank r the
    positions r, r+W, ...: together the whole range)."""

    def __init__(self, tokens, ctx, world, batch, seed, shuffle):
        self.tokens = torch.from_numpy(np.asarray(tokens, np.int64))
        self.ctx, self.world, self.batch, self.seed, self.shuffle = ctx, world, batch, seed, shuffle
        T = len(tokens)
        self.n = (T - ctx) // ctx if shuffle else (T - 1) // ctx
        self.steps_per_epoch = (self.n // world) // batch
        if self.steps_per_epoch < 1:
            raise SystemExit(f"{T} tokens give fewer than one step of {world} x {batch} windows of {ctx + 1}")
        self.epoch, self.order, self.shift = None, None, 0

    def epoch_order(self, epoch):
        if self.epoch != epoch:
            if self.shuffle:
                self.order = permutation(self.seed, epoch, self.n)
                self.shift = token_shift(self.seed, epoch, self.ctx)
            else:
                self.order, self.shift = list(range(self.n)), 0
            self.epoch = epoch
        return self.order, self.shift

    def step(self, s):
        """(inputs, targets) [world*batch, ctx] of global step s (0-based)."""
        epoch, k = divmod(s, self.steps_per_epoch)
        order, shift = self.epoch_order(epoch)
        G = self.world * self.batch
        starts = torch.tensor([shift + order[p] * self.ctx for p in range(k * G, (k + 1) * G)])
        idx = starts[:, None] + torch.arange(self.ctx + 1)[None, :]
        w = self.tokens[idx]
        return w[:, :-1], w[:, 1:]


def check_sampler(tool, n, world, batch, seed, epochs):
    """Our permutation against the build's own sampler (tests/data/sampler_dump)."""
    for epoch in range(epochs):
        out = subprocess.run([tool, str(n), str(world), str(batch), str(seed), str(epoch), "drop", "1"],
                             check=True, capture_output=True, text=True).stdout
        theirs = [int(x) for x in out.splitlines()[0].split()[1:]]
        if theirs != permutation(seed, epoch, n):
            raise SystemExit(f"gpt_learning_torch.py: the sampler re-implemented here differs from "
                             f"{tool} (epoch {epoch}, n {n}): the batch order would not match ringtrain's")


# ---- the recipe (docs/TRAINING.md) ----


def read_tokens(path):
    with h5py.File(path, "r") as f:
        if f.attrs.get("kind") not in ("tokens", b"tokens"):
            raise SystemExit(f"{path}: not a ringtrain tokens dataset")
        return np.asarray(f["tokens"][...])


@torch.no_grad()
def val_loss(model, tokens, ctx, batch=32):
    """`ringtrain eval` on a tokens set: the mean cross-entropy over every
    position of every unshuffled window (window i = tokens[i*ctx : i*ctx+ctx+1])."""
    model.eval()
    t = torch.from_numpy(np.asarray(tokens, np.int64))
    n = (len(t) - 1) // ctx
    total, count = 0.0, 0
    for first in range(0, n, batch):
        m = min(batch, n - first)
        idx = (torch.arange(first, first + m) * ctx)[:, None] + torch.arange(ctx + 1)[None, :]
        w = t[idx]
        logits, _ = model(w[:, :-1])
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), w[:, 1:].reshape(-1),
                                 reduction="sum")
        total += losses.item()
        count += m * ctx
    model.train()
    return total / count, n


def cmd_train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)  # nothing random is drawn; fixed anyway
    model = ref.from_spec(a.spec, torch.float32)
    cfg = ref.parse_spec(a.spec)
    packed = np.fromfile(a.init, dtype=np.float32)
    ref.load_packed(model, packed)
    tokens = read_tokens(a.data)
    batches = TokenBatches(tokens, cfg["ctx"], a.world, a.batch, a.seed, not a.no_shuffle)
    if a.sampler_dump and not a.no_shuffle:
        check_sampler(a.sampler_dump, batches.n, a.world, a.batch, a.seed,
                      min(2, (a.steps + batches.steps_per_epoch - 1) // batches.steps_per_epoch) or 1)
    # nanoGPT's configure_optimizers: decay the 2-D tensors (matmul weights
    # and embeddings; lm_head is wte), not biases and LayerNorm parameters
    params = dict(model.named_parameters())  # the tied lm_head appears once, as wte
    decay = [p for n, p in params.items() if p.dim() >= 2]
    no_decay = [p for n, p in params.items() if p.dim() < 2]
    kw = {"foreach": False} if "foreach" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8, **kw)
    metrics = open(a.metrics, "w") if a.metrics else None
    acc, acc_n, t0, t_log = 0.0, 0, time.perf_counter(), time.perf_counter()
    tokens_per_step = a.world * a.batch * cfg["ctx"]
    for s in range(a.steps):
        lr = schedule_lr(a.lr, a.warmup, a.steps, a.schedule, s)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches.step(s)
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        if a.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        opt.step()
        acc += loss.item()
        acc_n += 1
        if (s + 1) % a.log_every == 0 or s + 1 == a.steps:
            now = time.perf_counter()
            line = {"step": s + 1, "loss": acc / acc_n, "lr": lr, "grad_norm": norm.item(),
                    "tokens_per_s": acc_n * tokens_per_step / (now - t_log)}
            if metrics:
                metrics.write(json.dumps(line) + "\n")
                metrics.flush()
            if (s + 1) % (a.log_every * a.print_every) == 0 or s + 1 == a.steps:
                eta = (now - t0) / (s + 1) * (a.steps - s - 1)
                print(f"torch step {s + 1}/{a.steps} | loss {line['loss']:.4f} | lr {lr:.3e} | "
                      f"{line['tokens_per_s']:.0f} tokens/s | ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)
            acc, acc_n, t_log = 0.0, 0, now
    seconds = time.perf_counter() - t0
    out = {"train_seconds": seconds, "tokens_per_s": a.steps * tokens_per_step / seconds,
           "steps": a.steps, "threads": torch.get_num_threads(), "torch": torch.__version__}
    if a.val:
        out["eval_loss"], out["windows"] = val_loss(model, read_tokens(a.val), cfg["ctx"])
    if a.save:
        torch.save(model.state_dict(), a.save)
    print(json.dumps(out))


def cmd_eval(a):
    torch.set_num_threads(a.threads)
    with h5py.File(a.params, "r") as f:
        spec = f.attrs["model_spec"]
        spec = spec.decode() if isinstance(spec, bytes) else str(spec)
        model = ref.from_spec(spec, torch.float32)
        sd = model.state_dict()
        with torch.no_grad():
            for n in ref.param_names(model):
                sd[n].copy_(torch.from_numpy(np.asarray(f["params"][n][...])).view_as(sd[n]))
    loss, n = val_loss(model, read_tokens(a.data), ref.parse_spec(spec)["ctx"])
    print(json.dumps({"model_spec": spec, "eval_loss": loss, "windows": n}))


# ---- report ----


def words_of(text):
    return re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", text)


def cmd_report(a):
    ours = [json.loads(l) for l in open(a.ours) if '"loss"' in l and '"step"' in l]
    theirs = {r["step"]: r for r in (json.loads(l) for l in open(a.torch))}
    ours_eval, torch_eval = json.load(open(a.ours_eval)), json.load(open(a.torch_eval))
    cross = json.load(open(a.cross_eval)) if a.cross_eval else None
    pairs = [(r["step"], r["loss"], theirs[r["step"]]["loss"]) for r in ours if r["step"] in theirs]
    if not pairs:
        raise SystemExit("report: no common logged steps between the two runs")
    print("training loss (nats/byte, mean over the steps since the previous line):")
    print(f"{'step':>6s} {'ringtrain':>10s} {'pytorch':>10s} {'diff':>9s}")
    shown = set()
    if len(pairs) <= 20:
        shown = set(range(len(pairs)))
    else:
        shown = set(range(5)) | set(np.linspace(5, len(pairs) - 1, 12).astype(int).tolist())
    for i, (s, o, t) in enumerate(pairs):
        if i in shown:
            print(f"{s:6d} {o:10.4f} {t:10.4f} {o - t:+9.4f}")
    rel = [abs(o - t) / abs(t) for _, o, t in pairs]
    first = pairs[0]
    print(f"first logged step {first[0]}: relative difference {abs(first[1] - first[2]) / abs(first[2]):.2e}; "
          f"largest over the run {max(rel):.2e} (step {pairs[rel.index(max(rel))][0]}); "
          f"median {statistics.median(rel):.2e}")
    o, t = ours_eval["eval_loss"], torch_eval["eval_loss"]
    print(f"validation loss (nats/byte over {ours_eval.get('windows')} windows): ringtrain {o:.4f} "
          f"({o / math.log(2):.3f} bits/byte), PyTorch {t:.4f} ({t / math.log(2):.3f} bits/byte), "
          f"difference {o - t:+.4f} (target |diff| <= 0.03: {'met' if abs(o - t) <= 0.03 else 'NOT met'})")
    if cross:
        print(f"check: PyTorch's loss of ringtrain's exported parameters {cross['eval_loss']:.6f} "
              f"(ringtrain eval {o:.6f}, difference {cross['eval_loss'] - o:+.1e})")
    out = {"bench": "gpt_learning", "ringtrain_eval_loss": o, "pytorch_eval_loss": t, "diff": o - t,
           "first_step_rel_diff": abs(first[1] - first[2]) / abs(first[2]),
           "max_train_loss_rel_diff": max(rel)}
    if cross:
        out["pytorch_eval_of_ringtrain_params"] = cross["eval_loss"]
    if a.sample:
        text = open(a.sample, encoding="utf-8", errors="replace").read()
        if text.endswith("\n"):
            text = text[:-1]  # `ringtrain sample` ends its output with a newline
        gen = text[len(a.prompt):] if text.startswith(a.prompt) else text
        words = words_of(gen)
        if words and gen and gen[-1].isalpha():
            words = words[:-1]  # cut off by the byte count
        print(f"sample ({len(gen.encode('utf-8', 'replace'))} bytes after the prompt {a.prompt!r}):")
        print("-----")
        print(text)
        print("-----")
        # A word counts if it is in the list, case-insensitively; single
        # letters only as "a" and "I". The corpus's vocabulary: its words
        # seen at least 3 times (leaves out most typos and fragments).
        for label, path in (("dictionary", a.dict), ("corpus vocabulary", a.vocab_from)):
            if not path or not os.path.exists(path):
                continue
            if path.endswith(".h5"):
                counts = {}
                for w in words_of(read_tokens(path).tobytes().decode("latin-1")):
                    counts[w.lower()] = counts.get(w.lower(), 0) + 1
                vocab = {w for w, c in counts.items() if c >= 3}
            else:
                vocab = {w.strip().lower() for w in open(path, encoding="utf-8", errors="replace")}
            vocab = {w for w in vocab if len(w) > 1 or w in ("a", "i")}
            hits = sum(w.lower() in vocab for w in words)
            frac = hits / len(words) if words else 0.0
            print(f"words of the sample in the {label} ({os.path.basename(path)}, {len(vocab)} words): "
                  f"{hits}/{len(words)} = {frac:.0%}")
            out[f"sample_words_in_{label.replace(' ', '_')}"] = frac
        out["sample_words"] = len(words)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the PyTorch GPT with ringtrain's init, batches and recipe")
    t.add_argument("--spec", required=True, help="gpt:layers=L,dim=D,heads=H,ctx=T[,vocab=V]")
    t.add_argument("--init", required=True, help="packed float32 initial parameters (trainer_driver init)")
    t.add_argument("--data", required=True, help="training tokens set (.h5)")
    t.add_argument("--val", help="validation tokens set (.h5): its loss at the end")
    t.add_argument("--world", type=int, default=2, help="ringtrain's ranks (the batch order depends on it)")
    t.add_argument("--batch", type=int, default=8, help="windows per rank")
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=0)
    t.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    t.add_argument("--grad-clip", type=float, default=0.0)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--seed", type=int, default=0, help="ringtrain's --seed (the sample order)")
    t.add_argument("--no-shuffle", action="store_true")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--print-every", type=int, default=10, help="progress on stderr every N metrics lines")
    t.add_argument("--metrics", help="JSON-lines metrics")
    t.add_argument("--save", help="torch.save the final state_dict here")
    t.add_argument("--sampler-dump", help="the build's tests/data/sampler_dump: check the permutation against it")
    e = sub.add_parser("eval", help="PyTorch's validation loss of a ringtrain parameters file")
    e.add_argument("--params", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("report", help="compare the two runs")
    r.add_argument("--ours", required=True, help="ringtrain's metrics (.jsonl)")
    r.add_argument("--torch", required=True, help="PyTorch's metrics (.jsonl)")
    r.add_argument("--ours-eval", required=True, help="`ringtrain eval --json` output")
    r.add_argument("--torch-eval", required=True, help="`train` output (JSON)")
    r.add_argument("--cross-eval", help="`eval` output of ringtrain's parameters (JSON)")
    r.add_argument("--sample", help="the sampled text")
    r.add_argument("--prompt", default="")
    r.add_argument("--dict", default="/usr/share/dict/words")
    r.add_argument("--vocab-from", help="a tokens set whose words make the fallback vocabulary")
    a = p.parse_args()
    {"train": cmd_train, "eval": cmd_eval, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
