#!/usr/bin/env python3
"""An independent float64 forward pass of SmolLM2 (GGUF arch `llama`) in numpy.

Usage: scripts/reference/smollm2_numpy.py      (needs: pip install numpy gguf)

Reads the GGUF with the PyPI `gguf` package, dequantizes every weight with
`gguf.quants.dequantize` and runs the model in float64 over the same 512 tokens as
tests/reference/smollm2-q4_1/teacher_forced.json. Unlike llama.cpp it does not quantize
activations to Q8_1 and keeps K/V and attention in float64, so it shows what the
quantized weights give with exact arithmetic. It writes teacher_forced_numpy_f64.json
(same format as teacher_forced.json) and prints how far each llama.cpp setting is from it.
"""

import hashlib
import importlib.metadata
import json
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("smollm2_numpy: needs the gguf package (python3 -m pip install gguf)")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "reference", "smollm2-q4_1")


def field(reader, key):
    f = reader.fields[key]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0] == gguf.GGUFValueType.STRING else v[0].item()


class Model:
    """SmolLM2 from GGUF, all weights dequantized to float64 once."""

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        tensors = {t.name: t for t in r.tensors}
        self.w = {
            name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            for name, t in tensors.items()
        }
        self.n_layer = field(r, "llama.block_count")
        self.n_head = field(r, "llama.attention.head_count")
        self.n_kv = field(r, "llama.attention.head_count_kv")
        self.eps = field(r, "llama.attention.layer_norm_rms_epsilon")
        self.base = field(r, "llama.rope.freq_base")
        self.emb = self.w["token_embd.weight"]  # [vocab, dim]
        # No output.weight in this file: the head is tied to the token embedding.
        self.head = self.w.get("output.weight", self.emb)

    def rmsnorm(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def logprobs(self, ids):
        """Log-softmax of the logits at every position of one causal sequence."""
        w, n = self.w, len(ids)
        dim = self.emb.shape[1]
        n_head, n_kv = self.n_head, self.n_kv
        hd = dim // n_head
        # Rotary embedding on adjacent pairs (llama.cpp rope type 0, "NORM"): the converter
        # permuted the Q/K rows of the Hugging Face weights so that this is the right pairing.
        pos = np.arange(n, dtype=np.float64)[:, None]
        theta = pos * self.base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

        def rope(x):  # [n, heads, hd]
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = a * cos - b * sin
            out[..., 1::2] = a * sin + b * cos
            return out

        mask = np.triu(np.full((n, n), -np.inf), k=1)
        x = self.emb[np.asarray(ids)]
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = rope((h @ w[p + "attn_q.weight"].T).reshape(n, n_head, hd))
            k = rope((h @ w[p + "attn_k.weight"].T).reshape(n, n_kv, hd))
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, n_kv, hd)
            att = np.empty((n, n_head, hd))
            for hh in range(n_head):
                kv = hh // (n_head // n_kv)
                s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
            x = x + att.reshape(n, dim) @ w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        logits = self.rmsnorm(x, w["output_norm.weight"]) @ self.head.T
        m = logits.max(axis=1, keepdims=True)
        return logits - (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))


def main():
    models = os.environ.get("EDGELM_MODELS") or os.path.expanduser("~/.cache/edgelm/models")
    path = os.path.join(models, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    with open(path, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(OUT, "teacher_forced.json")) as f:
        ref = json.load(f)
    with open(os.path.join(OUT, "perplexity.json")) as f:
        ppl_ref = json.load(f)
    if ref["model_sha256"] != model_sha or ppl_ref["model_sha256"] != model_sha:
        sys.exit("smollm2_numpy: model file differs from the one the llama.cpp references used")
    model = Model(path)
    gguf_version = importlib.metadata.version("gguf")
    produced_by = (
        "scripts/reference/smollm2_numpy.py: float64 numpy forward pass on weights "
        f"dequantized by the PyPI gguf package {gguf_version}"
    )
    note = (
        "independent of llama.cpp: exact arithmetic on the quantized weights, activations "
        "not quantized, float64 everywhere"
    )

    ids = ref["tokens"]
    n = len(ids)
    lp = model.logprobs(ids)
    top2 = np.argsort(-lp, axis=1, kind="stable")[:, :2]
    obj = {
        "model_sha256": model_sha,
        "llama_cpp_version": None,
        "produced_by": produced_by,
        "note": note,
        "settings": {"dtype": "float64", "kv": "float64", "activations": "not quantized"},
        "text_file": ref["text_file"],
        "n_tokens": n,
        "tokens": ids,
        "argmax": [int(i) for i in top2[:, 0]],
        "top2": [[[int(t), round(float(lp[i, t]), 6)] for t in top2[i]] for i in range(n)],
        "logprob_next": [round(float(lp[i, ids[i + 1]]), 6) for i in range(n - 1)],
    }
    with open(os.path.join(OUT, "teacher_forced_numpy_f64.json"), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")

    ppl = float(np.exp(-np.mean(obj["logprob_next"])))
    print(f"numpy f64: ppl over the {n - 1} teacher-forced predictions = {ppl:.4f}")
    for name in ("teacher_forced.json", "teacher_forced_f32kv_nofa.json"):
        with open(os.path.join(OUT, name)) as f:
            other = json.load(f)
        d = np.abs(np.array(other["logprob_next"]) - np.array(obj["logprob_next"]))
        agree = sum(a == b for a, b in zip(other["argmax"], obj["argmax"]))
        oppl = float(np.exp(-np.mean(other["logprob_next"])))
        print(f"  vs {name}: ppl {oppl:.4f}; |d logprob_next| max {d.max():.4f} mean {d.mean():.5f} "
              f"p99 {np.percentile(d, 99):.4f}; argmax agrees {agree}/{n}")

    # Perplexity with llama-perplexity's chunking (see README.md) on the tokens llama.cpp made.
    with open(os.path.join(OUT, "tokenize.json")) as f:
        from_text = json.load(f)["reference_text"]["tokens"]
    with open(os.path.join(OUT, "model_info.json")) as f:
        bos = json.load(f)["bos"]
    results = []
    for r in ppl_ref["results"]:
        n_ctx = r["ctx"]
        first, nll, count = n_ctx // 2, 0.0, 0
        for c in range(len(from_text) // n_ctx):
            chunk = list(from_text[c * n_ctx : (c + 1) * n_ctx])
            if ppl_ref["add_bos"]:
                chunk[0] = bos
            lpc = model.logprobs(chunk)
            for i in range(first, n_ctx - 1):
                nll -= lpc[i, chunk[i + 1]]
                count += 1
        value = float(np.exp(nll / count))
        results.append({"ctx": n_ctx, "ppl": round(value, 6), "scored_tokens": count})
        print(f"numpy f64 perplexity -c {n_ctx}: {value:.4f} (llama.cpp: default {r['ppl']}, "
              f"f32 KV no FA {r['ppl_f32kv_nofa']})")
    with open(os.path.join(OUT, "perplexity_numpy_f64.json"), "w") as f:
        json.dump({
            "model_sha256": model_sha,
            "produced_by": produced_by,
            "note": note + "; same chunking as llama-perplexity",
            "text_file": ref["text_file"],
            "results": results,
        }, f, indent=1)
        f.write("\n")

    # Greedy continuation of the same prompts as greedy.json (full recompute per step: slow but simple).
    with open(os.path.join(OUT, "greedy.json")) as f:
        greedy_ref = json.load(f)
    eog = {0, 2, 4}  # <|endoftext|>, <|im_end|>, <reponame>: llama.cpp's EOG set for this file
    prompts = []
    for pr in greedy_ref["prompts"]:
        seq, steps = list(pr["prompt_tokens"]), []
        for _ in range(greedy_ref["n_generate"]):
            last = model.logprobs(seq)[-1]
            top = np.argsort(-last, kind="stable")[:5]
            steps.append({"token": int(top[0]), "top5": [[int(t), round(float(last[t]), 6)] for t in top]})
            seq.append(int(top[0]))
            if int(top[0]) in eog:
                break
        gen = [st["token"] for st in steps]
        same = next((i for i, (a, b) in enumerate(zip(gen, pr["generated"])) if a != b), min(len(gen), len(pr["generated"])))
        print(f"numpy greedy {pr['name']}: first {same} of {len(gen)} tokens equal llama.cpp's")
        prompts.append({
            "name": pr["name"],
            "prompt": pr["prompt"],
            "prompt_tokens": pr["prompt_tokens"],
            "generated": gen,
            "common_prefix_with_llama_cpp": same,
            "steps": steps,
        })
    with open(os.path.join(OUT, "greedy_numpy_f64.json"), "w") as f:
        json.dump({
            "model_sha256": model_sha,
            "produced_by": produced_by,
            "note": note,
            "n_generate": greedy_ref["n_generate"],
            "prompts": prompts,
        }, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
