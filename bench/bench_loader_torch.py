"""bench_loader_torch.py - the PyTorch peer of bench_loader: batches per
second for the same job (Fashion-MNIST from the same .h5 file, shuffled with
DistributedSampler, batch 512, uint8 -> float32 / 255), done the usual way
(DataLoader over a TensorDataset, default collate) and the fastest way
(one indexed gather of a batch from an in-memory tensor). Also the rate a
consumer of batches runs at: one training step of the MLP 784-1024-1024-10
(forward, backward, SGD) on this machine's CPU, and on CUDA when present.

usage: bench_loader_torch.py --data F.h5 [--batch 512] [--seconds 3] [--workers 0] [--json]
"""
import argparse
import json
import time

import h5py
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def rate(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with h5py.File(a.data, "r") as f:
        x = torch.from_numpy(f["inputs"][...]).reshape(f["inputs"].shape[0], -1)
        y = torch.from_numpy(f["labels"][...].astype("int64"))
    n = x.shape[0]

    # the usual way: per-item __getitem__ and default collate, converted per batch
    ds = TensorDataset(x, y)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=1)
    dl = DataLoader(ds, batch_size=a.batch, sampler=sampler, drop_last=True,
                    num_workers=a.workers, persistent_workers=a.workers > 0)
    state = {"it": iter(dl), "epoch": 0}

    def usual():
        try:
            xb, yb = next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            sampler.set_epoch(state["epoch"])
            state["it"] = iter(dl)
            xb, yb = next(state["it"])
        xb = xb.float().div_(255.0)
        return 1

    # the fastest way: one gather of the batch rows, then the conversion
    perm = {"p": torch.randperm(n), "i": 0}

    def gather():
        i = perm["i"]
        if i + a.batch > n:
            perm["p"], i = torch.randperm(n), 0
        idx = perm["p"][i:i + a.batch]
        perm["i"] = i + a.batch
        xb = x.index_select(0, idx).float().div_(255.0)
        yb = y.index_select(0, idx)
        del xb, yb
        return 1

    res = {"batch": a.batch, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "dataloader_workers": a.workers,
           "dataloader_batches_per_s": rate(usual, a.seconds),
           "gather_batches_per_s": rate(gather, a.seconds)}

    # what a trainer consumes: MLP 784-1024-1024-10 steps per second
    def mlp_rate(device):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                    torch.nn.Linear(1024, 10)).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        xb = torch.rand(a.batch, 784, device=device)
        yb = torch.randint(0, 10, (a.batch,), device=device)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            return 1
        for _ in range(5):
            step()
        if device == "cuda":
            torch.cuda.synchronize()

            def step_sync():
                for _ in range(20):
                    step()
                torch.cuda.synchronize()
                return 20
            return rate(step_sync, a.seconds)
        return rate(step, a.seconds)

    res["mlp_cpu_steps_per_s"] = mlp_rate("cpu")
    if torch.cuda.is_available():
        res["mlp_cuda_steps_per_s"] = mlp_rate("cuda")
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
