#!/usr/bin/python3
"""pt_to_safetensors.py - a PyTorch state_dict saved with torch.save, as a
safetensors file, written by hand (no `safetensors` package needed).
`ringtrain import --from M.pt` runs it, then reads the safetensors file.

  /usr/bin/python3 tools/pt_to_safetensors.py IN.pt OUT.safetensors

IN.pt holds a mapping of names to tensors (what `model.state_dict()` gives),
or a mapping with such a mapping under "state_dict" or "model" (common in
training checkpoints). It is loaded with weights_only=True where this
PyTorch has it (1.13 and later), so the pickle cannot run code; tensors go
to the CPU. Every tensor is written as it is stored (its dtype kept:
float32 as F32, bfloat16 as BF16, int64 as I64, ...), in the mapping's
order; ringtrain then checks names, shapes and dtypes against the model.
A tensor that appears under two names (tied weights) is written twice.

Exit codes: 0 written; 2 the input is not such a file (reason on stderr);
3 PyTorch cannot be imported.
"""
import inspect
import json
import os
import sys

DTYPES = {  # torch dtype name -> safetensors dtype
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}


def fail(msg, code=2):
    print("pt_to_safetensors: %s" % msg, file=sys.stderr)
    sys.exit(code)


def load_state_dict(torch, path):
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    try:
        obj = torch.load(path, **kwargs)
    except Exception as e:  # pickle, zip and weights_only errors alike
        fail("%s: cannot be loaded by torch.load: %s" % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict) and not torch.is_tensor(obj[key]):
                obj = obj[key]
                break
    else:
        fail("%s holds a %s, not a state_dict (a mapping of names to tensors)" % (path, type(obj).__name__))
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        fail("%s: not a state_dict: %d entries are not name -> tensor: %s"
             % (path, len(bad), ", ".join(repr(k) for k in bad[:20]) + (" ..." if len(bad) > 20 else "")))
    return obj


def tensor_bytes(torch, t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()  # numpy's native order: little-endian here


def main():
    if len(sys.argv) != 3:
        fail("usage: pt_to_safetensors.py IN.pt OUT.safetensors")
    src, dst = sys.argv[1], sys.argv[2]
    if sys.byteorder != "little":
        fail("this host is big-endian; safetensors data is little-endian")
    try:
        import torch
    except ImportError as e:
        fail("PyTorch is not available to %s: %s" % (sys.executable, e), 3)
    sd = load_state_dict(torch, src)
    header, blobs, at = {}, [], 0
    for name, t in sd.items():
        dt = str(t.dtype).replace("torch.", "")
        if dt not in DTYPES:
            fail("%s: tensor %s has dtype %s, which safetensors has no name for here" % (src, name, dt))
        data = tensor_bytes(torch, t)
        header[name] = {"dtype": DTYPES[dt], "shape": list(t.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned
    with open(dst, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
