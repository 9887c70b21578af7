#!/usr/bin/env python3
"""Writes tiny random-weight GGUF models that exercise an architecture's code paths where no real
weights can be fetched, then records llama.cpp's logits on them as reference JSON.

qwen2-tiny: the Qwen2 block (Llama + Q/K/V biases + half-split RoPE) at width 64, 2 layers,
4 heads / 2 KV heads, vocab 256. The weights are random (fixed seed), not a trained model; the
tokenizer is the first 256 tokens of llama.cpp's ggml-vocab-qwen2.gguf so llama.cpp loads it.

gpt2-tiny: the GPT-2 block (LayerNorm, learned positions, fused Q/K/V, GELU MLP, biases
everywhere, head tied to the token embedding) at width 80 with 5 heads of 16 (a head count that is
not a power of two, like Cerebras-GPT-256M's 17), 2 layers, 64 positions, vocab 256 from
ggml-vocab-gpt-2.gguf. Besides llama.cpp's logits, the JSON holds a float64 numpy forward with
each GELU form: llama.cpp always uses the tanh form; `edgelm.activation_function = "gelu"`
selects the erf form in edgelm, which only numpy can check.

Usage: scripts/reference/tiny_models.py [--vocab PATH] [--gpt2-vocab PATH] [--ref PATH/TO/edgelm-ref]
Needs: pip install numpy gguf
"""

import argparse
import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import gguf

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGELM_MODELS", Path.home() / ".cache/edgelm/models"))
DEFAULT_VOCAB = CACHE / "vocab/ggml-vocab-qwen2.gguf"
DEFAULT_GPT2_VOCAB = CACHE / "vocab/ggml-vocab-gpt-2.gguf"
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


G_EMBD = 80
G_HEAD = 5
G_HEAD_DIM = G_EMBD // G_HEAD
G_FF = 256
G_LAYER = 2
G_CTX = 64
G_EPS = 1e-5
G_SEED = 20261128
# For each token id t, the token scored after t at position 0.
POS0_NEXT = [int(t) for t in np.random.default_rng(8).integers(0, N_VOCAB, N_VOCAB)]


def write_gpt2(path, vocab_path):
    """GPT-2 layout as llama.cpp's converter writes it: `attn_qkv` rows are Q, then K, then V
    (Hugging Face's Conv1D `c_attn` transposed), no `output.weight` (tied head)."""
    rng = np.random.default_rng(G_SEED)

    def mat(rows, cols, scale, dtype=np.float16):
        return (rng.standard_normal((rows, cols)) * scale).astype(dtype)

    def vec(n, scale, mean=0.0):
        return (mean + rng.standard_normal(n) * scale).astype(np.float32)

    tokens, types, merges, pre = tokenizer(vocab_path)
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_name("gpt2-tiny (random weights, test data)")
    w.add_context_length(G_CTX)
    w.add_embedding_length(G_EMBD)
    w.add_block_count(G_LAYER)
    w.add_feed_forward_length(G_FF)
    w.add_head_count(G_HEAD)
    w.add_layer_norm_eps(G_EPS)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)

    d = G_EMBD
    w.add_tensor("token_embd.weight", mat(N_VOCAB, d, 0.5))
    w.add_tensor("position_embd.weight", mat(G_CTX, d, 0.3, np.float32))
    for i in range(G_LAYER):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", vec(d, 0.1, 1.0))
        w.add_tensor(b + "attn_norm.bias", vec(d, 0.1))
        w.add_tensor(b + "attn_qkv.weight", mat(3 * d, d, 0.15))
        w.add_tensor(b + "attn_qkv.bias", vec(3 * d, 0.3))
        # One F32 matrix, so the F32 kernel path is compared too.
        w.add_tensor(b + "attn_output.weight", mat(d, d, 0.15, np.float32))
        w.add_tensor(b + "attn_output.bias", vec(d, 0.2))
        w.add_tensor(b + "ffn_norm.weight", vec(d, 0.1, 1.0))
        w.add_tensor(b + "ffn_norm.bias", vec(d, 0.1))
        w.add_tensor(b + "ffn_up.weight", mat(G_FF, d, 0.15))
        w.add_tensor(b + "ffn_up.bias", vec(G_FF, 0.3))
        w.add_tensor(b + "ffn_down.weight", mat(d, G_FF, 0.1))
        w.add_tensor(b + "ffn_down.bias", vec(d, 0.2))
    w.add_tensor("output_norm.weight", vec(d, 0.1, 1.0))
    w.add_tensor("output_norm.bias", vec(d, 0.1))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return len(merges)


def gpt2_numpy_forward(model, tokens, gelu, round_v=False):
    """GPT-2's forward (Radford et al., 2019) in float64 from the file's weights. `round_v` stores
    V rounded to float16, as an f16 KV cache does: at position 0 attention returns V itself, so
    with it the first position has no other rounding than f32 arithmetic's."""
    wts = {t.name: np.array(t.data, dtype=np.float64) for t in gguf.GGUFReader(str(model)).tensors}
    d, hd = G_EMBD, G_HEAD_DIM

    def ln(x, w, b):
        mu = x.mean()
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean() + G_EPS) * w + b

    if gelu == "tanh":
        def act(x):
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    else:
        erf = np.vectorize(math.erf)

        def act(x):
            return 0.5 * x * (1 + erf(x / np.sqrt(2)))

    ks, vs = [[] for _ in range(G_LAYER)], [[] for _ in range(G_LAYER)]
    argmax, lp_next = [], []
    for pos, t in enumerate(tokens):
        x = wts["token_embd.weight"][t] + wts["position_embd.weight"][pos]
        for i in range(G_LAYER):
            b = f"blk.{i}."
            h = ln(x, wts[b + "attn_norm.weight"], wts[b + "attn_norm.bias"])
            qkv = wts[b + "attn_qkv.weight"] @ h + wts[b + "attn_qkv.bias"]
            q, k, v = qkv[:d], qkv[d : 2 * d], qkv[2 * d :]
            ks[i].append(k.reshape(G_HEAD, hd))
            if round_v:
                v = v.astype(np.float16).astype(np.float64)
            vs[i].append(v.reshape(G_HEAD, hd))
            kk, vv = np.stack(ks[i]), np.stack(vs[i])
            q = q.reshape(G_HEAD, hd)
            o = np.zeros((G_HEAD, hd))
            for hh in range(G_HEAD):
                sc = kk[:, hh, :] @ q[hh] / np.sqrt(hd)
                p = np.exp(sc - sc.max())
                o[hh] = (p / p.sum()) @ vv[:, hh, :]
            x = x + wts[b + "attn_output.weight"] @ o.reshape(-1) + wts[b + "attn_output.bias"]
            h = ln(x, wts[b + "ffn_norm.weight"], wts[b + "ffn_norm.bias"])
            u = act(wts[b + "ffn_up.weight"] @ h + wts[b + "ffn_up.bias"])
            x = x + wts[b + "ffn_down.weight"] @ u + wts[b + "ffn_down.bias"]
        lo = wts["token_embd.weight"] @ ln(x, wts["output_norm.weight"], wts["output_norm.bias"])
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
    ap.add_argument("--gpt2-vocab", type=Path, default=DEFAULT_GPT2_VOCAB)
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

    model = ROOT / "tests/data/tiny/gpt2-tiny.gguf"
    n_merges = write_gpt2(model, a.gpt2_vocab)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    argmax, lp_next, top5 = reference(model, a.ref, TOKENS)
    tanh_argmax, tanh_lp_next = gpt2_numpy_forward(model, TOKENS, "tanh")
    erf_argmax, erf_lp_next = gpt2_numpy_forward(model, TOKENS, "erf")
    # Position 0 of every token: attention is the identity on V there, so the f16 attention
    # arithmetic that follows llama.cpp (and blurs later positions by ~1e-2) drops out, and the
    # two GELU forms (whose effect is ~1e-3) can be told apart.
    pos0 = {"next": POS0_NEXT}
    for gelu in ["tanh", "erf"]:
        am, lp = [], []
        for t, n in enumerate(POS0_NEXT):
            a, l = gpt2_numpy_forward(model, [t, n], gelu, round_v=True)
            am.append(a[0])
            lp.append(l[0])
        pos0[gelu] = {"argmax": am, "logprob_next": lp}
    out = {
        "model": "tests/data/tiny/gpt2-tiny.gguf",
        "model_sha256": sha,
        "produced_by": "scripts/reference/tiny_models.py via edgelm-ref logits (llama.cpp)",
        "command": "edgelm-ref logits MODEL -t 1 -k 5 --ubatch 1",
        "note": f"random weights (numpy seed {G_SEED}), F16 matrices except F32 attn_output and "
        f"position_embd, F32 norms/biases, head tied to token_embd; tokenizer: first {N_VOCAB} "
        f"tokens of ggml-vocab-gpt-2.gguf, {n_merges} merges",
        "tokens": TOKENS,
        "argmax": argmax,
        "logprob_next": lp_next,
        "top5": top5,
        "numpy_f64": {"argmax": tanh_argmax, "logprob_next": tanh_lp_next},
        "numpy_f64_gelu_erf": {"argmax": erf_argmax, "logprob_next": erf_lp_next},
        "numpy_f64_pos0_v_f16": pos0,
    }
    dst = ROOT / "tests/reference/tiny/gpt2-tiny.json"
    dst.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{model} ({model.stat().st_size} bytes, sha256 {sha}) -> {dst}")


if __name__ == "__main__":
    main()
