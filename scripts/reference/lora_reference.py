#!/usr/bin/env python3
"""llama.cpp's outputs for SmolLM2-135M-Instruct Q4_1 with a LoRA adapter applied at run time.

Usage: scripts/reference/lora_reference.py [--adapter-only NAME OUT.gguf]

Writes tests/reference/smollm2-q4_1/lora.json. The adapter is random but deterministic: its
factors come from a counter-based splitmix64 that tests/support/lora.rs implements too, and it is
written with the PyPI `gguf` package (F32, F16 and Q8_0 factors at ranks 8, 16 and 32). The JSON
records the adapter's spec and an FNV-1a checksum of its tensor bytes, so the Rust test rebuilds
the same file and proves it did. llama.cpp (edgelm-ref, built by scripts/reference/build-llama-cpp)
then runs the base model with the adapter: teacher forcing one token per decode (its generation
path) and greedy continuations. Needs numpy and gguf (pip install numpy gguf).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

from importlib.metadata import version

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "reference", "smollm2-q4_1", "lora.json")
MODELS = os.environ.get("EDGELM_MODELS", os.path.expanduser("~/.cache/edgelm/models"))
MODEL = os.path.join(MODELS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
THREADS = 2
N_TEACHER = 128
N_GREEDY = 16
GREEDY_PROMPTS = ["capital", "story", "code"]

# Two adapters. "mixed": every layer's Q (F32, rank 8), V (F16, rank 16) and FFN-down (Q8_0,
# rank 32: Q8_0 needs lora_b's rows, the rank, to fill 32-element blocks), so alpha/r differs per
# tensor, as llama.cpp computes it per tensor. "q8_0": Q8_0 factors only (K, output, gate, up at
# rank 32, scale 0.75), the products whose kernels match ggml's bit for bit.
SPECS = {
    "mixed": {
        "arch": "llama",
        "alpha": 16.0,
        "amp": 0.0625,
        "seed": 100,
        "layers": list(range(30)),
        "tensors": [
            ["attn_q.weight", "F32", 8],
            ["attn_v.weight", "F16", 16],
            ["ffn_down.weight", "Q8_0", 32],
        ],
        "scale": 1.0,
    },
    "q8_0": {
        "arch": "llama",
        "alpha": 32.0,
        "amp": 0.0625,
        "seed": 200,
        "layers": list(range(30)),
        "tensors": [
            ["attn_k.weight", "Q8_0", 32],
            ["attn_output.weight", "Q8_0", 32],
            ["ffn_gate.weight", "Q8_0", 32],
            ["ffn_up.weight", "Q8_0", 32],
        ],
        "scale": 0.75,
    },
}

MASK = (1 << 64) - 1


def values(seed, n):
    """n values in [-0.5, 0.5): splitmix64 of seed*2^40 + i, top 24 bits (as tests/support/lora.rs)."""
    i = np.arange(n, dtype=np.uint64)
    z = (np.uint64((seed << 40) & MASK) + i + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)) - np.float32(0.5)


def fnv1a(chunks):
    h = 0xCBF29CE484222325
    for c in chunks:
        for b in c:
            h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def stored(arr, ty):
    """The tensor as the GGUF stores it: (array for the writer, raw type or None, bytes)."""
    if ty == "F32":
        a = arr.astype(np.float32)
        return a, None, a.tobytes()
    if ty == "F16":
        a = arr.astype(np.float16)
        return a, None, a.tobytes()
    if ty == "Q8_0":
        q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        return q, gguf.GGMLQuantizationType.Q8_0, q.tobytes()
    raise ValueError(ty)


def make_adapter(path, spec):
    base = gguf.GGUFReader(MODEL)
    dims = {t.name: (int(t.shape[0]), int(t.shape[1])) for t in base.tensors if len(t.shape) == 2}
    w = gguf.GGUFWriter(path, spec["arch"])
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", spec["alpha"])
    amp = np.float32(spec["amp"])
    chunks = []
    targets = [(f"blk.{l}.{s}", ty, r) for l in spec["layers"] for s, ty, r in spec["tensors"]]
    for i, (name, ty, r) in enumerate(targets):
        n_in, n_out = dims[name]
        a = (values(spec["seed"] + 2 * i, r * n_in) * amp).reshape(r, n_in)
        b = (values(spec["seed"] + 2 * i + 1, n_out * r) * amp).reshape(n_out, r)
        for suffix, m in (("lora_a", a), ("lora_b", b)):
            data, raw, raw_bytes = stored(m, ty)
            if raw is None:
                w.add_tensor(f"{name}.{suffix}", data)
            else:
                w.add_tensor(f"{name}.{suffix}", data, raw_shape=data.shape, raw_dtype=raw)
            chunks.append(raw_bytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return fnv1a(chunks)


def sh(cmd, stdin=None):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_case(tool, spec, teacher, greedy_ref, tmp, name):
    path = os.path.join(tmp, f"{name}.gguf")
    checksum = make_adapter(path, spec)
    lora = ["--lora", path, "--lora-scale", repr(spec["scale"])]
    base = ["-t", str(THREADS), "-k", "5"]

    tokens = teacher["tokens"][:N_TEACHER]
    rows = sh([tool, "logits", MODEL, *base, "--ubatch", "1", *lora],
              " ".join(map(str, tokens))).splitlines()
    argmax, lp_next = [], []
    for line in rows:
        parts = line.split()
        argmax.append(int(parts[1]))
        if parts[2] != "nan":
            lp_next.append(round(float(parts[2]), 6))
    changed = sum(a != b for a, b in zip(argmax, teacher["argmax"][:N_TEACHER]))

    prompts = []
    for p in greedy_ref["prompts"]:
        if p["name"] not in GREEDY_PROMPTS:
            continue
        out = sh([tool, "greedy", MODEL, *base, "-n", str(N_GREEDY), *lora],
                 " ".join(map(str, p["prompt_tokens"])))
        steps = [line.split() for line in out.splitlines()]
        prompts.append({
            "name": p["name"],
            "prompt_tokens": p["prompt_tokens"],
            "generated": [int(s[0]) for s in steps],
            "generated_without_adapter": p["generated"],
            "top5": [[[int(c.split(":")[0]), round(float(c.split(":")[1]), 6)] for c in s[1:]]
                     for s in steps],
        })
    print(f"{name}: adapter checksum {checksum:016x}, argmax changed at {changed}/{len(tokens)} positions")
    return {
        "name": name,
        "adapter": dict(spec, fnv1a_of_tensor_bytes=f"{checksum:016x}"),
        "teacher_forced": {"tokens": tokens, "argmax": argmax, "logprob_next": lp_next,
                           "argmax_changed_by_adapter": changed},
        "greedy": {"n_generate": N_GREEDY, "prompts": prompts},
    }


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--adapter-only":
        print(f"{make_adapter(sys.argv[3], SPECS[sys.argv[2]]):016x}")
        return
    bin_dir = sh([os.path.join(HERE, "build-llama-cpp")]).strip().splitlines()[-1]
    tool = os.path.join(bin_dir, "edgelm-ref")
    ref_dir = os.path.join(REPO, "tests", "reference", "smollm2-q4_1")
    with open(os.path.join(ref_dir, "teacher_forced.json")) as f:
        teacher = json.load(f)
    with open(os.path.join(ref_dir, "greedy.json")) as f:
        greedy_ref = json.load(f)
    model_sha = sha256_file(MODEL)
    if teacher["model_sha256"] != model_sha:
        sys.exit("the model differs from the one the other references were made with")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [run_case(tool, spec, teacher, greedy_ref, tmp, name)
                 for name, spec in SPECS.items()]
    obj = {
        "model_sha256": model_sha,
        "llama_cpp_version": teacher["llama_cpp_version"],
        "produced_by": "scripts/reference/lora_reference.py via edgelm-ref --lora "
                       "(llama_adapter_lora_init + llama_set_adapters_lora)",
        "adapter_writer": f"PyPI gguf {version('gguf')}",
        "settings": {"threads": THREADS, "type_k": "f16", "type_v": "f16",
                     "flash_attn": "auto (llama.cpp default)",
                     "teacher_forced": "one token per llama_decode (--ubatch 1)",
                     "greedy": "prompt in one batch, then one token per decode"},
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
