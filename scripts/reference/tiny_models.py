#!/usr/bin/env python3
"""Writes tiny random-weight GGUF models that exercise an architecture's code paths where no real
weights can be fetched, then records llama.cpp's logits on them as reference JSON.

qwen2-tiny: the Qwen2 block (Llama + Q/K/V biases + half-split RoPE) at width 64, 2 layers,
4 heads / 2 KV heads, vocab 256. The weights are random (fixed seed), not a trained model; the
tokenizer is the first 256 tokens of llama.cpp's ggml-vocab-qwen2.gguf so llama.cpp loads it.

Usage: scripts/reference/tiny_models.py [--vocab PATH] [--ref PATH/TO/edgelm-ref]
Needs: pip install numpy gguf
"""

import argparse
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGELM_MODELS", Path.home() / ".cache/edgelm/models"))
DEFAULT_VOCAB = CACHE / "vocab/ggml-vocab-qwen2.gguf"
DEFAULT_REF = Path.home() / ".cache/edgelm/llama.cpp/build/bin/edgelm-ref"

N_VOCAB = 256
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = N_EMBD // N_HEAD
N_FF = 128
N_CTX = 256
SEED = 20241128
# The token ids fed to llama.cpp: a fixed pseudo-random walk over the vocab (48 positions).
TOKENS = [int(t) for t in np.random.default_rng(7).integers(0, N_VOCAB, 48)]


def field(reader, key):
    f = reader.fields[key]
    return [f.parts[i] for i in f.data]


def tokenizer(vocab_path):
    r = gguf.GGUFReader(str(vocab_path))
    tokens = [bytes(p).decode("utf-8") for p in field(r, "tokenizer.ggml.tokens")[:N_VOCAB]]
    types = [int(p[0]) for p in field(r, "tokenizer.ggml.token_type")[:N_VOCAB]]
    # No merge of two single-byte tokens yields another single byte, and llama.cpp refuses a file
    # without merges (the GGUF writer drops an empty list), so keep the first few merges of two
    # in-vocab tokens. They only matter when tokenizing text, which the references never do.
    have = set(tokens)
    merges = []
    for p in field(r, "tokenizer.ggml.merges"):
        m = bytes(p).decode("utf-8")
        a, b = m.split(" ", 1)
        if a in have and b in have:
            merges.append(m)
            if len(merges) == 8:
                break
    pre = bytes(field(r, "tokenizer.ggml.pre")[0]).decode()
    return tokens, types, merges, pre


def write_qwen2(path, vocab_path):
    rng = np.random.default_rng(SEED)

    def mat(rows, cols, scale):
        # numpy shape (rows, cols) is GGUF dims [cols, rows]: ne0 = the input width.
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16)

    def vec(n, scale, mean=0.0):
        return (mean + rng.standard_normal(n) * scale).astype(np.float32)

    tokens, types, merges, pre = tokenizer(vocab_path)
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("qwen2-tiny (random weights, test data)")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_pad_token_id(1)

    w.add_tensor("token_embd.weight", mat(N_VOCAB, N_EMBD, 1.0))
    kv = N_HEAD_KV * HEAD_DIM
    for i in range(N_LAYER):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", vec(N_EMBD, 0.1, 1.0))
        w.add_tensor(b + "attn_q.weight", mat(N_EMBD, N_EMBD, 0.25))
        w.add_tensor(b + "attn_q.bias", vec(N_EMBD, 0.5))
        w.add_tensor(b + "attn_k.weight", mat(kv, N_EMBD, 0.25))
        w.add_tensor(b + "attn_k.bias", vec(kv, 0.5))
        w.add_tensor(b + "attn_v.weight", mat(kv, N_EMBD, 0.25))
        w.add_tensor(b + "attn_v.bias", vec(kv, 0.5))
        w.add_tensor(b + "attn_output.weight", mat(N_EMBD, N_EMBD, 0.15))
        w.add_tensor(b + "ffn_norm.weight", vec(N_EMBD, 0.1, 1.0))
        w.add_tensor(b + "ffn_gate.weight", mat(N_FF, N_EMBD, 0.2))
        w.add_tensor(b + "ffn_up.weight", mat(N_FF, N_EMBD, 0.2))
        w.add_tensor(b + "ffn_down.weight", mat(N_EMBD, N_FF, 0.15))
    w.add_tensor("output_norm.weight", vec(N_EMBD, 0.1, 1.0))
    w.add_tensor("output.weight", mat(N_VOCAB, N_EMBD, 0.3))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return len(merges)


def numpy_forward(model, tokens):
    """The Qwen2 forward in float64 from the file's weights: a second reference that shares no
    code with llama.cpp (no F16 activations), to tell the two references' rounding apart."""
    wts = {t.name: np.array(t.data, dtype=np.float64) for t in gguf.GGUFReader(str(model)).tensors}
    d, group = HEAD_DIM, N_HEAD // N_HEAD_KV

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x) + 1e-6) * w

    def rope(x, pos):
        # Half-split ("NeoX") pairs (i, i + d/2), as Qwen2 was trained.
        h = d // 2
        th = pos * 10000.0 ** (-2 * np.arange(h) / d)
        c, s = np.cos(th), np.sin(th)
        a, b = x[:, :h], x[:, h:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=1)

    ks, vs = [[] for _ in range(N_LAYER)], [[] for _ in range(N_LAYER)]
    argmax, lp_next = [], []
    for pos, t in enumerate(tokens):
        x = wts["token_embd.weight"][t].copy()
        for i in range(N_LAYER):
            b = f"blk.{i}."
            h = rms(x, wts[b + "attn_norm.weight"])
            q = wts[b + "attn_q.weight"] @ h + wts[b + "attn_q.bias"]
            k = wts[b + "attn_k.weight"] @ h + wts[b + "attn_k.bias"]
            v = wts[b + "attn_v.weight"] @ h + wts[b + "attn_v.bias"]
            q = rope(q.reshape(N_HEAD, d), pos)
            ks[i].append(rope(k.reshape(N_HEAD_KV, d), pos))
            vs[i].append(v.reshape(N_HEAD_KV, d))
            kk, vv = np.stack(ks[i]), np.stack(vs[i])
            o = np.zeros((N_HEAD, d))
            for hh in range(N_HEAD):
                sc = kk[:, hh // group, :] @ q[hh] / np.sqrt(d)
                p = np.exp(sc - sc.max())
                o[hh] = (p / p.sum()) @ vv[:, hh // group, :]
            x = x + wts[b + "attn_output.weight"] @ o.reshape(-1)
            h = rms(x, wts[b + "ffn_norm.weight"])
            g, u = wts[b + "ffn_gate.weight"] @ h, wts[b + "ffn_up.weight"] @ h
            x = x + wts[b + "ffn_down.weight"] @ (g / (1 + np.exp(-g)) * u)
        lo = wts["output.weight"] @ rms(x, wts["output_norm.weight"])
        ls = lo - lo.max() - np.log(np.exp(lo - lo.max()).sum())
        argmax.append(int(np.argmax(lo)))
        if pos + 1 < len(tokens):
            lp_next.append(round(float(ls[tokens[pos + 1]]), 6))
    return argmax, lp_next


def reference(model, ref_bin, tokens):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(ref_bin.parent) + ":" + env.get("LD_LIBRARY_PATH", "")
    cmd = [str(ref_bin), "logits", str(model), "-t", "1", "-k", "5", "--ubatch", "1"]
    out = subprocess.run(
        cmd, input=" ".join(map(str, tokens)), capture_output=True, text=True, env=env, check=True
    ).stdout
    argmax, lp_next, top5 = [], [], []
    for line in out.splitlines():
        f = line.split()
        assert int(f[0]) == len(argmax), line
        argmax.append(int(f[1]))
        if f[2] != "nan":
            lp_next.append(round(float(f[2]), 6))
        top5.append([[int(a), round(float(b), 6)] for a, b in (x.split(":") for x in f[3:])])
    assert len(argmax) == len(tokens)
    return argmax, lp_next, top5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    ap.add_argument("--ref", type=Path, default=DEFAULT_REF)
    a = ap.parse_args()

    model = ROOT / "tests/data/tiny/qwen2-tiny.gguf"
    model.parent.mkdir(parents=True, exist_ok=True)
    n_merges = write_qwen2(model, a.vocab)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    argmax, lp_next, top5 = reference(model, a.ref, TOKENS)
    np_argmax, np_lp_next = numpy_forward(model, TOKENS)
    out = {
        "model": "tests/data/tiny/qwen2-tiny.gguf",
        "model_sha256": sha,
        "produced_by": "scripts/reference/tiny_models.py via edgelm-ref logits (llama.cpp)",
        "command": "edgelm-ref logits MODEL -t 1 -k 5 --ubatch 1",
        "note": f"random weights (numpy seed {SEED}), F16 matrices, F32 norms/biases; "
        f"tokenizer: first {N_VOCAB} tokens of ggml-vocab-qwen2.gguf, {n_merges} merges",
        "tokens": TOKENS,
        "argmax": argmax,
        "logprob_next": lp_next,
        "top5": top5,
        "numpy_f64": {"argmax": np_argmax, "logprob_next": np_lp_next},
    }
    dst = ROOT / "tests/reference/tiny/qwen2-tiny.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{model} ({model.stat().st_size} bytes, sha256 {sha}) -> {dst}")


if __name__ == "__main__":
    main()
