#!/usr/bin/env python3
"""Independent numpy (float64) forward pass over the Hugging Face-layout test checkpoints.

Usage:
  scripts/fetch-models hf && python3 scripts/reference/hf_forward.py
      writes tests/reference/converter/{smollm2-135m,smollm2-135m-lora,cerebras-111m-2l,
      cerebras-111m-2l-lora,cerebras-256m-3l,quant_bytes}.json
  python3 scripts/reference/hf_forward.py --model HF_DIR [--lora ADAPTER_DIR] [--lora-scale S]
      [--tokens 1,2,3] [--out FILE.json]
      one ad-hoc run (default tokens: the first 16 of the reference text for that tokenizer)

Needs numpy, safetensors, regex (pip). The checkpoints come from scripts/reference/hf_checkpoints.py
(via `scripts/fetch-models hf`), in ${EDGELM_MODELS:-~/.cache/edgelm/models}/hf/.

Written from the model descriptions, not from edgelm's Rust code:
- Llama (LlamaForCausalLM): RMSNorm, rotary embedding in Hugging Face's half-split form
  (`rotate_half`) on the checkpoint's own (unpermuted) Q/K rows, grouped-query attention, SwiGLU,
  output head tied to the embedding when `tie_word_embeddings`.
- GPT-2 (GPT2LMHeadModel, Cerebras-GPT): LayerNorm with bias, learned positions, Conv1D weights
  ([in, out], y = x W + b), fused c_attn split into q, k, v, causal attention scaled by
  1/sqrt(head_dim), GELU as `activation_function` says ("gelu": exact erf; "gelu_new" and
  "gelu_pytorch_tanh": tanh form), head tied to wte.
- LoRA (PEFT): W' = W + S * (lora_alpha / r) * B A, transposed for fan_in_fan_out (Conv1D).
All arithmetic is float64 on the stored weights (F32 or F16, upcast exactly).

Input tokens do not come from edgelm's tokenizer: SmolLM2 uses the ids llama.cpp made of
tests/data/text/reference.txt (tests/reference/smollm2-q4_1/tokenize.json); GPT-2 uses the
pure-Python GPT-2 BPE below (byte encoder + merges + GPT-2's regex), which is first checked
against llama.cpp's GPT-2 tokenizer test vectors when they are cached (`scripts/fetch-models vocab`).

Sanity check printed (and stored in smollm2-135m.json under `checks`): argmax agreement with
llama.cpp on the original GGUF (teacher_forced.json) and with smollm2_numpy.py (float64 on the GGUF,
adjacent-pair RoPE on the permuted rows), which must agree almost exactly since the weights are
the same numbers.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

try:
    import regex
    from safetensors.numpy import load_file
except ImportError as e:
    sys.exit(f"hf_forward: {e}; needs: python3 -m pip install --user numpy safetensors regex")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "reference", "converter")
SMOLLM2_REF = os.path.join(REPO, "tests", "reference", "smollm2-q4_1")
TEXT = "tests/data/text/reference.txt"

N_TOP = 8
N_PROBE = 64
N_GREEDY = 8
GREEDY_TEXT = "The capital of France is"

# name: (base folder, adapter folder or None, number of tokens, tokenizer)
CASES = {
    "smollm2-135m": ("smollm2-135m", None, 128, "llama.cpp"),
    "smollm2-135m-lora": ("smollm2-135m", "smollm2-135m-lora", 128, "llama.cpp"),
    "cerebras-111m-2l": ("cerebras-111m-2l", None, 64, "gpt2"),
    "cerebras-111m-2l-lora": ("cerebras-111m-2l", "cerebras-111m-2l-lora", 64, "gpt2"),
    "cerebras-256m-3l": ("cerebras-256m-3l", None, 64, "gpt2"),
}

# GGUF tensors whose quantized bytes quant_bytes.json pins: (GGUF name, HF name, permute heads key).
QUANT_TENSORS = [
    ("token_embd.weight", "model.embed_tokens.weight", None),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", "num_attention_heads"),
    ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", "num_key_value_heads"),
    ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", None),
    ("blk.29.attn_v.weight", "model.layers.29.self_attn.v_proj.weight", None),
    ("blk.29.attn_q.weight", "model.layers.29.self_attn.q_proj.weight", "num_attention_heads"),
]


def log(msg):
    print(f"hf_forward: {msg}", file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- loading


def safetensors_files(folder):
    """The weight files of a checkpoint folder: the shards an index names, or the single file."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    for name in ("model.safetensors", "adapter_model.safetensors"):
        if os.path.isfile(os.path.join(folder, name)):
            return [name]
    raise SystemExit(f"hf_forward: no safetensors in {folder}")


def load_weights(folder):
    w = {}
    for fn in safetensors_files(folder):
        for k, v in load_file(os.path.join(folder, fn)).items():
            if k in w:
                raise SystemExit(f"hf_forward: {k} twice in {folder}")
            w[k] = v.astype(np.float64)
    return w


def read_lora(adapter_dir, scale):
    """PEFT LoRA adapter -> (config, {module path: (A [r, in], B [out, r], scale * alpha / r)})."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg["peft_type"] != "LORA" or cfg.get("use_rslora") or cfg.get("use_dora") or cfg["bias"] != "none":
        raise SystemExit(f"hf_forward: unsupported adapter config in {adapter_dir}")
    factor = scale * cfg["lora_alpha"] / cfg["r"]
    ad = load_weights(adapter_dir)
    prefix = "base_model.model."
    modules = sorted({k[len(prefix):].rsplit(".lora_", 1)[0] for k in ad})
    if len(ad) != 2 * len(modules):
        raise SystemExit(f"hf_forward: unpaired lora_A/lora_B tensors in {adapter_dir}")
    targets = set(cfg["target_modules"])
    out = {}
    for m in modules:
        if m.rsplit(".", 1)[1] not in targets:
            raise SystemExit(f"hf_forward: {m} is not in target_modules {sorted(targets)}")
        out[m] = (ad[f"{prefix}{m}.lora_A.weight"], ad[f"{prefix}{m}.lora_B.weight"], factor)
    return cfg, out


def merge_lora(w, cfg, adapters):
    """W += scale * alpha/r * B @ A for every adapted module (transposed for Conv1D weights)."""
    for m, (a, b, factor) in adapters.items():
        delta = factor * (b @ a)  # [out, in]
        if cfg["fan_in_fan_out"]:
            delta = delta.T  # Conv1D keeps [in, out]
        if w[m + ".weight"].shape != delta.shape:
            raise SystemExit(f"hf_forward: LoRA {m} shape {delta.shape} vs {w[m + '.weight'].shape}")
        w[m + ".weight"] = w[m + ".weight"] + delta


# ----------------------------------------------------------------------------- models


def softmax_causal(scores):
    """Row-wise softmax of [heads, n, n] scores with a causal mask."""
    n = scores.shape[-1]
    scores = scores + np.triu(np.full((n, n), -np.inf), k=1)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return scores / scores.sum(axis=-1, keepdims=True)


def llama_logits(cfg, w, proj, ids):
    n, d = len(ids), cfg["hidden_size"]
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // n_head
    eps = cfg["rms_norm_eps"]

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    # Hugging Face rotary embedding: frequency j pairs dimension j with j + hd/2 (rotate_half).
    inv_freq = cfg["rope_theta"] ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]  # [n, 1, hd]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]

    def rope(x):  # [n, heads, hd]
        rot = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], axis=-1)
        return x * cos + rot * sin

    x = w["model.embed_tokens.weight"][np.asarray(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = rope(proj(h, p + "self_attn.q_proj").reshape(n, n_head, hd))
        k = rope(proj(h, p + "self_attn.k_proj").reshape(n, n_kv, hd))
        v = proj(h, p + "self_attn.v_proj").reshape(n, n_kv, hd)
        group = n_head // n_kv  # query head j reads key/value head j // group
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        att = softmax_causal(np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd))
        o = np.einsum("hqk,khd->qhd", att, v).reshape(n, n_head * hd)
        x = x + proj(o, p + "self_attn.o_proj")
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = proj(h, p + "mlp.gate_proj")
        u = proj(h, p + "mlp.up_proj")
        x = x + proj(g / (1 + np.exp(-g)) * u, p + "mlp.down_proj")
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", True) else w["lm_head.weight"]
    return rmsnorm(x, w["model.norm.weight"]) @ head.T


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, kind):
    """GELU as transformers' ACT2FN names it: "gelu" is x * Phi(x) (erf); the tanh forms
    approximate it (they differ by up to ~5e-4 per unit)."""
    if kind == "gelu":
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))
    if kind in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    raise SystemExit(f"hf_forward: activation_function {kind!r} not handled")


# Phi(1) = 0.8413447460685429; the tanh form gives 0.8411919906082768 there.
assert abs(gelu(np.array([1.0]), "gelu")[0] - 0.8413447460685429) < 1e-15
assert abs(gelu(np.array([1.0]), "gelu_new")[0] - 0.8411919906082768) < 1e-12


def gpt2_logits(cfg, w, proj, ids):
    n, d, n_head = len(ids), cfg["n_embd"], cfg["n_head"]
    hd = d // n_head
    eps = cfg["layer_norm_epsilon"]

    def layernorm(x, p):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    x = w["transformer.wte.weight"][np.asarray(ids)] + w["transformer.wpe.weight"][:n]
    for l in range(cfg["n_layer"]):
        p = f"transformer.h.{l}."
        qkv = proj(layernorm(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(n, n_head, hd) for i in range(3))
        att = softmax_causal(np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd))
        o = np.einsum("hqk,khd->qhd", att, v).reshape(n, d)
        x = x + proj(o, p + "attn.c_proj")
        h = gelu(proj(layernorm(x, p + "ln_2"), p + "mlp.c_fc"), cfg["activation_function"])
        x = x + proj(h, p + "mlp.c_proj")
    return layernorm(x, "transformer.ln_f") @ w["transformer.wte.weight"].T


class Model:
    """A checkpoint folder in float64, optionally with a LoRA adapter: merged into the weights
    (merge=True, what a converter does) or applied beside them (merge=False, PEFT's unmerged
    forward y = W x + scale * alpha/r * B (A x), which needs no transposes at all)."""

    def __init__(self, folder, lora=None, lora_scale=1.0, merge=True):
        with open(os.path.join(folder, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = load_weights(folder)
        self.lora_cfg, self.adapters = None, {}
        if lora:
            self.lora_cfg, adapters = read_lora(lora, lora_scale)
            self.lora_modules = len(adapters)
            if merge:
                merge_lora(self.w, self.lora_cfg, adapters)
            else:
                self.adapters = adapters
        arch = self.cfg["architectures"][0]
        self.forward = {"LlamaForCausalLM": llama_logits, "GPT2LMHeadModel": gpt2_logits}[arch]
        # Linear layers keep HF's [out, in]; GPT-2's Conv1D layers store [in, out].
        self.conv1d = arch == "GPT2LMHeadModel"

    def proj(self, x, module):
        w = self.w[module + ".weight"]
        y = x @ w if self.conv1d else x @ w.T
        if module + ".bias" in self.w:
            y = y + self.w[module + ".bias"]
        if module in self.adapters:
            a, b, factor = self.adapters[module]
            y = y + factor * ((x @ a.T) @ b.T)
        return y

    def logits(self, ids):
        return self.forward(self.cfg, self.w, self.proj, ids)

    def greedy(self, prompt, n):
        """Greedy continuation (full recompute per step); also the top-1/top-2 logit gap per step."""
        seq, out, margins = list(prompt), [], []
        for _ in range(n):
            last = self.logits(seq)[-1]
            top = np.argsort(-last, kind="stable")[:2]
            out.append(int(top[0]))
            margins.append(round(float(last[top[0]] - last[top[1]]), 6))
            seq.append(int(top[0]))
        return out, margins


# ----------------------------------------------------------------------------- GPT-2 BPE


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, map(chr, cs)))


class Gpt2Bpe:
    PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def __init__(self, vocab_json, merges_txt):
        with open(vocab_json, encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(merges_txt, encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(l.split(" ")) for l in lines[1:] if l]  # line 0 is "#version: 0.2"
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, first = min(pairs)  # the lowest-ranked merge; every occurrence of it merges
            if rank == math.inf:
                break
            pair = (parts[first], parts[first + 1])
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for piece in self.PAT.findall(text):
            word = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[p] for p in self.bpe(word))
        return ids


def check_bpe_against_llama_cpp(bpe, models):
    """The pure-Python BPE must reproduce llama.cpp's GPT-2 tokenizer test vectors."""
    inp = os.path.join(models, "vocab", "ggml-vocab-gpt-2.gguf.inp")
    if not os.path.isfile(inp):
        log("skip GPT-2 BPE check (no vocab/ggml-vocab-gpt-2.gguf.inp; scripts/fetch-models vocab)")
        return None
    with open(inp, encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    with open(inp[: -len(".inp")] + ".out", encoding="utf-8") as f:
        outs = [[int(x) for x in line.split()] for line in f.read().splitlines()]
    assert len(texts) == len(outs) > 30
    bad = [t for t, o in zip(texts, outs) if bpe.encode(t) != o]
    if bad:
        raise SystemExit(f"hf_forward: GPT-2 BPE disagrees with llama.cpp's test vectors on {bad[:3]!r}")
    log(f"GPT-2 BPE == llama.cpp test vectors ({len(texts)} texts)")
    return len(texts)


# ----------------------------------------------------------------------------- outputs


def rows(xs):
    """JSON for a list of rows, one row per line (keeps files diffable and small)."""
    return "[\n" + ",\n".join("  " + json.dumps(x, separators=(",", ":")) for x in xs) + "\n ]"


def write_case_json(path, obj):
    """Plain JSON, laid out for reading and diffing: per-position lists one row per line, flat id
    lists on one line."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            text = rows(v)
        elif isinstance(v, list):
            text = json.dumps(v, separators=(",", ":"))
        else:
            text = json.dumps(v, indent=1).replace("\n", "\n ")
        parts.append(f" {json.dumps(k)}: {text}")
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")


def probe_ids(logits, vocab, special):
    """64 fixed ids: the most frequent top-1 ids, special ids, the ends of the vocabulary, and a
    seeded spread over the rest."""
    ids = []
    top1 = np.argmax(logits, axis=1)
    counts = {}
    for t in top1:
        counts[int(t)] = counts.get(int(t), 0) + 1
    for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]:
        ids.append(t)
    for t in special + [0, vocab - 1]:
        if t not in ids:
            ids.append(t)
    rng = np.random.default_rng(64)
    while len(ids) < N_PROBE:
        t = int(rng.integers(0, vocab))
        if t not in ids:
            ids.append(t)
    return sorted(ids)


def case_json(name, model, tokens, tokens_from, greedy_prompt, greedy_text, checkpoint_sha, lora_scale):
    t0 = time.time()
    lg = model.logits(tokens)
    vocab = lg.shape[1]
    order = np.argsort(-lg, axis=1, kind="stable")[:, :N_TOP]
    m = lg.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))[:, 0]
    cfg = model.cfg
    special = sorted({cfg.get("bos_token_id"), cfg.get("eos_token_id"), cfg.get("pad_token_id")} - {None})
    probes = probe_ids(lg, vocab, special)
    greedy, margins = model.greedy(greedy_prompt, N_GREEDY)
    lora = ""
    if model.lora_cfg:
        lc = model.lora_cfg
        lora = (f" with the PEFT LoRA adapter merged (W + {lora_scale} * {lc['lora_alpha']}/{lc['r']} * B A"
                f"{', transposed for fan_in_fan_out' if lc['fan_in_fan_out'] else ''}; "
                f"{model.lora_modules} modules)")
    obj = {
        "case": name,
        "notes": (
            f"scripts/reference/hf_forward.py: float64 numpy forward pass (written from the model "
            f"description, not from edgelm) of the Hugging Face checkpoint made by "
            f"scripts/reference/hf_checkpoints.py{lora}. Raw logits (not log-probabilities); "
            f"logprob = logit - logsumexp. tokens: the first {len(tokens)} tokens of {TEXT} "
            f"({tokens_from}). One causal sequence, positions 0..{len(tokens) - 1}. argmax ties go "
            f"to the lower id. greedy: '{greedy_text}', argmax each step, full recompute, no stop "
            f"token."
        ),
        "checkpoint_sha256": checkpoint_sha,
        "lora_scale": lora_scale if model.lora_cfg else None,
        "vocab_size": vocab,
        "tokens": [int(t) for t in tokens],
        "argmax": [int(t) for t in order[:, 0]],
        "logsumexp": [round(float(x), 6) for x in lse],
        "top": [[[int(t), round(float(lg[i, t]), 6)] for t in order[i]] for i in range(len(tokens))],
        "probe_ids": probes,
        "probe_logits": [[round(float(lg[i, t]), 6) for t in probes] for i in range(len(tokens))],
        "greedy_prompt": [int(t) for t in greedy_prompt],
        "greedy_tokens": greedy,
        "greedy_margin": margins,
    }
    log(f"{name}: forward + greedy {time.time() - t0:.1f} s")
    return obj, lg


def manifest_sha(hf, folders):
    with open(os.path.join(hf, "manifest.json")) as f:
        files = json.load(f)["files"]
    out = {}
    for folder in folders:
        if folder is None:
            continue
        for fn in safetensors_files(os.path.join(hf, folder)):
            rel = f"{folder}/{fn}"
            sha = sha256_file(os.path.join(hf, rel))
            if files.get(rel, {}).get("sha256") != sha:
                raise SystemExit(f"hf_forward: {rel} differs from manifest.json; rerun scripts/fetch-models hf")
            out[rel] = sha
    return out


def smollm2_checks(model, obj, lg):
    """Agreement with llama.cpp on the original GGUF (teacher_forced.json) and with the float64
    numpy forward on the GGUF (teacher_forced_numpy_f64.json), over our positions and over all 512."""
    n = len(obj["tokens"])
    checks = {}
    for fn in ("teacher_forced.json", "teacher_forced_numpy_f64.json"):
        with open(os.path.join(SMOLLM2_REF, fn)) as f:
            ref = json.load(f)
        if ref["tokens"][:n] != obj["tokens"]:
            raise SystemExit(f"hf_forward: {fn} has other tokens")
        if fn == "teacher_forced.json":
            log(f"smollm2-135m: forward over all {len(ref['tokens'])} teacher-forced tokens for the check")
            full = model.logits(ref["tokens"])
        entry = {}
        for m, x in ((n, lg), (len(ref["tokens"]), full)):
            lp = x - x.max(axis=1, keepdims=True)
            lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
            am = np.argmax(x, axis=1)
            agree = int((am == np.array(ref["argmax"][:m])).sum())
            ours = np.array([lp[i, ref["tokens"][i + 1]] for i in range(m - 1)])
            d = np.abs(np.array(ref["logprob_next"][: m - 1]) - ours)
            top2 = np.sort(lp, axis=1)[:, -2:]
            entry[f"first_{m}"] = {
                "argmax_agree": agree,
                "positions": m,
                "logprob_next_max_abs_diff": float(f"{d.max():.3g}"),
                "logprob_next_mean_abs_diff": float(f"{d.mean():.3g}"),
                # Where the argmax differs: [position, ours, theirs, our top-1 minus top-2 logprob].
                "disagreements": [
                    [i, int(am[i]), ref["argmax"][i], round(float(top2[i, 1] - top2[i, 0]), 4)]
                    for i in range(m) if am[i] != ref["argmax"][i]
                ],
            }
            log(f"smollm2-135m vs {fn}, first {m}: argmax agrees {agree}/{m} ({100 * agree / m:.1f} %), "
                f"|d logprob_next| max {d.max():.2e} mean {d.mean():.2e}")
        checks[fn] = entry
    return checks


def llama_cpp_gpt2_check(model, folder, tokens, bin_dir):
    """Write the GPT-2 checkpoint as an F32 GGUF (llama.cpp's `gpt2` layout) and compare llama.cpp's
    log-probabilities with ours. llama.cpp computes in float32 and always uses the tanh GELU
    (through an f16 lookup table), so agreement is close but not exact."""
    import subprocess
    import tempfile

    try:
        import gguf
    except ImportError:
        log("skip llama.cpp check (no gguf package)")
        return None
    tool = os.path.join(bin_dir, "edgelm-ref")
    if not os.path.isfile(tool):
        log(f"skip llama.cpp check (no {tool}; scripts/reference/build-llama-cpp)")
        return None
    cfg, w = model.cfg, model.w
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
        merges = [l for l in f.read().split("\n")[1:] if l]
    tokens_list = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    eot = vocab["<|endoftext|>"]
    with tempfile.TemporaryDirectory(prefix="hf_forward-") as tmp:
        path = os.path.join(tmp, "gpt2.gguf")
        wr = gguf.GGUFWriter(path, "gpt2")
        wr.add_context_length(cfg["n_positions"])
        wr.add_embedding_length(cfg["n_embd"])
        wr.add_feed_forward_length(cfg.get("n_inner") or 4 * cfg["n_embd"])
        wr.add_block_count(cfg["n_layer"])
        wr.add_head_count(cfg["n_head"])
        wr.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        wr.add_file_type(gguf.LlamaFileType.ALL_F32)
        wr.add_tokenizer_model("gpt2")
        wr.add_tokenizer_pre("gpt-2")
        wr.add_token_list(tokens_list)
        wr.add_token_types([gguf.TokenType.CONTROL if i == eot else gguf.TokenType.NORMAL for i in range(len(tokens_list))])
        wr.add_token_merges(merges)
        wr.add_bos_token_id(eot)
        wr.add_eos_token_id(eot)
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        wr.add_tensor("token_embd.weight", f32(w["transformer.wte.weight"]))
        wr.add_tensor("position_embd.weight", f32(w["transformer.wpe.weight"]))
        names = {"ln_1": "attn_norm", "ln_2": "ffn_norm", "attn.c_attn": "attn_qkv",
                 "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        for l in range(cfg["n_layer"]):
            for hf_name, g_name in names.items():
                p = f"transformer.h.{l}.{hf_name}"
                weight = w[p + ".weight"]
                # Conv1D [in, out] -> GGUF [out, in] rows (dims innermost-first: {in, out}).
                wr.add_tensor(f"blk.{l}.{g_name}.weight", f32(weight if weight.ndim == 1 else weight.T))
                wr.add_tensor(f"blk.{l}.{g_name}.bias", f32(w[p + ".bias"]))
        wr.add_tensor("output_norm.weight", f32(w["transformer.ln_f.weight"]))
        wr.add_tensor("output_norm.bias", f32(w["transformer.ln_f.bias"]))
        wr.write_header_to_file()
        wr.write_kv_data_to_file()
        wr.write_tensors_to_file()
        wr.close()
        cmd = [tool, "logits", path, "-t", "2", "-k", str(N_TOP), "--kv", "f32", "--fa", "off"]
        res = subprocess.run(cmd, input=" ".join(map(str, tokens)), capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"hf_forward: {' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    rows = [line.split() for line in res.stdout.splitlines()]
    if len(rows) != len(tokens):
        raise SystemExit("hf_forward: llama.cpp returned the wrong number of rows")
    lg = model.logits(tokens)
    m = lg.max(axis=1, keepdims=True)
    lp = lg - (m + np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))
    agree, diffs = 0, []
    for i, r in enumerate(rows):
        agree += int(r[1]) == int(np.argmax(lg[i]))
        for item in r[3:]:
            t, v = item.split(":")
            diffs.append(abs(float(v) - lp[i, int(t)]))
    out = {
        "what": ("llama.cpp (vendored in llama-cpp-python 0.3.36, edgelm-ref logits, f32 KV, flash attention "
                 "off) on this checkpoint written as an F32 GGUF of arch gpt2; llama.cpp uses the tanh GELU"),
        "argmax_agree": agree,
        "positions": len(tokens),
        "top8_logprob_max_abs_diff": float(f"{max(diffs):.3g}"),
        "top8_logprob_mean_abs_diff": float(f"{np.mean(diffs):.3g}"),
    }
    log(f"llama.cpp check: argmax agrees {agree}/{len(tokens)}; top-8 |d logprob| max {max(diffs):.2e} "
        f"mean {np.mean(diffs):.2e}")
    return out


def quant_bytes(hf, checkpoint_sha):
    try:
        import gguf
    except ImportError:
        raise SystemExit("hf_forward: quant_bytes.json needs the gguf package (pip install gguf)")
    folder = os.path.join(hf, "smollm2-135m")
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    for fn in safetensors_files(folder):
        w.update(load_file(os.path.join(folder, fn)))
    original = {}
    gguf_path = os.path.join(os.path.dirname(hf), "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.isfile(gguf_path):
        for t in gguf.GGUFReader(gguf_path).tensors:
            if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:
                original[t.name] = hashlib.sha256(t.data.tobytes()).hexdigest()
    out = []
    for gname, hname, heads_key in QUANT_TENSORS:
        a = w[hname].astype(np.float32)
        if heads_key:
            # llama.cpp's permute() for arch llama (adjacent-pair RoPE rows).
            h = cfg[heads_key]
            a = a.reshape(h, 2, a.shape[0] // h // 2, a.shape[1]).swapaxes(1, 2).reshape(a.shape)
        a = np.ascontiguousarray(a)
        entry = {
            "gguf_name": gname,
            "hf_name": hname,
            "gguf_dims": [int(a.shape[1]), int(a.shape[0])],
            "permuted": bool(heads_key),
            "f32_sha256": hashlib.sha256(a.astype("<f4").tobytes()).hexdigest(),
            "f16_sha256": hashlib.sha256(a.astype("<f2").tobytes()).hexdigest(),
        }
        for qt in ("Q8_0", "Q4_0"):
            q = gguf.quants.quantize(a, getattr(gguf.GGMLQuantizationType, qt))
            b = q.tobytes()
            entry[qt.lower()] = {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        if gname in original:
            # This tensor is Q8_0 in the PyPI GGUF; requantizing its exact dequantization must give
            # the file's bytes back (every block's max element is exactly +-127 d).
            entry["q8_0"]["equals_original_gguf_bytes"] = entry["q8_0"]["sha256"] == original[gname]
            if not entry["q8_0"]["equals_original_gguf_bytes"]:
                raise SystemExit(f"hf_forward: Q8_0 of {gname} differs from the original GGUF bytes")
        out.append(entry)
        log(f"quant_bytes: {gname}")
    import importlib.metadata

    return {
        "notes": (
            "SmolLM2 tensors from the HF checkpoint (hf_checkpoints.py) in GGUF form: attn_q/attn_k "
            "rows permuted with llama.cpp's permute(w, n_head) (n_head_kv for K), data in GGUF order "
            "(row-major [rows = HF out, cols = HF in]; gguf_dims innermost-first). f32/f16: sha256 of the "
            "little-endian element bytes; q8_0/q4_0: sha256 of gguf.quants.quantize() output "
            f"(PyPI gguf {importlib.metadata.version('gguf')}), i.e. ggml's reference quantizer bytes."
        ),
        "checkpoint_sha256": checkpoint_sha,
        "tensors": out,
    }


def run_all(models, only, llama_bin):
    hf = os.path.join(models, "hf")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(SMOLLM2_REF, "tokenize.json")) as f:
        llama_cpp_ids = json.load(f)["reference_text"]["tokens"]
    with open(os.path.join(SMOLLM2_REF, "greedy.json")) as f:
        capital = next(p for p in json.load(f)["prompts"] if p["name"] == "capital")
    assert capital["prompt"] == GREEDY_TEXT
    bpe = Gpt2Bpe(os.path.join(hf, "cerebras-111m-2l", "vocab.json"), os.path.join(hf, "cerebras-111m-2l", "merges.txt"))
    n_vectors = check_bpe_against_llama_cpp(bpe, models)
    with open(os.path.join(REPO, TEXT), encoding="utf-8") as f:
        gpt2_ids = bpe.encode(f.read())
    loaded = {}
    for name in only or list(CASES) + ["quant_bytes"]:
        t0 = time.time()
        if name == "quant_bytes":
            sha = manifest_sha(hf, ["smollm2-135m"])
            obj = quant_bytes(hf, sha)
            with open(os.path.join(OUT, "quant_bytes.json"), "w") as f:
                json.dump(obj, f, indent=1)
                f.write("\n")
            continue
        base, lora, n, tok = CASES[name]
        if tok == "llama.cpp":
            tokens, prompt = llama_cpp_ids[:n], capital["prompt_tokens"]
            tokens_from = "ids llama.cpp made, from tests/reference/smollm2-q4_1/tokenize.json"
        else:
            tokens, prompt = gpt2_ids[:n], bpe.encode(GREEDY_TEXT)
            tokens_from = ("pure-Python GPT-2 BPE over vocab.json + merges.txt" +
                           (f", checked against llama.cpp's {n_vectors} GPT-2 tokenizer test vectors" if n_vectors else ""))
        sha = manifest_sha(hf, [base, lora])
        model = Model(os.path.join(hf, base), os.path.join(hf, lora) if lora else None, 1.0)
        obj, lg = case_json(name, model, tokens, tokens_from, prompt, GREEDY_TEXT, sha, 1.0)
        if name == "smollm2-135m":
            obj["checks"] = smollm2_checks(model, obj, lg)
        if tok == "gpt2" and not lora:
            chk = llama_cpp_gpt2_check(model, os.path.join(hf, base), tokens, llama_bin)
            if chk:
                obj["checks"] = {"llama_cpp": chk}
        if lora:
            # PEFT's unmerged forward must give the same logits as the merged weights.
            unmerged = Model(os.path.join(hf, base), os.path.join(hf, lora), 1.0, merge=False).logits(tokens)
            d = float(np.abs(unmerged - lg).max())
            obj["checks"] = {"unmerged_lora_logits_max_abs_diff": float(f"{d:.3g}")}
            log(f"{name}: unmerged LoRA forward vs merged weights: max |d logit| {d:.2e}")
            if d > 1e-6:
                raise SystemExit(f"hf_forward: {name}: merged and unmerged LoRA disagree ({d})")
        if lora:
            if base not in loaded:
                loaded[base] = Model(os.path.join(hf, base)).logits(tokens)
            b = loaded[base]
            agree = int((np.argmax(lg, 1) == np.argmax(b, 1)).sum())
            obj["base_argmax_agree"] = agree
            log(f"{name}: argmax equals the base model's at {agree}/{n} positions; "
                f"max |d logit| {np.abs(lg - b).max():.3f}")
        if not lora:
            loaded[base] = lg
        stats(name, obj, lg)
        write_case_json(os.path.join(OUT, name + ".json"), obj)
        log(f"wrote {name}.json ({os.path.getsize(os.path.join(OUT, name + '.json')) // 1024} KB) in {time.time() - t0:.1f} s")


def stats(name, obj, lg):
    am = np.array(obj["argmax"])
    toks = np.array(obj["tokens"])
    gap = np.array([t[0][1] - t[1][1] for t in obj["top"]])
    lp = lg - np.array(obj["logsumexp"])[:, None]
    ent = -(np.exp(lp) * lp).sum(axis=1)
    log(f"{name}: {len(set(am.tolist()))} distinct argmax ids over {len(am)} positions; argmax == input token at "
        f"{int((am == toks).sum())}; logit std {lg.std():.3f}; top1-top2 gap median {np.median(gap):.3f} "
        f"min {gap.min():.2e}; entropy mean {ent.mean():.2f} nats; greedy {obj['greedy_tokens']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=os.environ.get("EDGELM_MODELS")
                    or os.path.join(os.path.expanduser("~"), ".cache", "edgelm", "models"))
    ap.add_argument("--case", nargs="+", choices=list(CASES) + ["quant_bytes"], help="only these outputs")
    ap.add_argument("--llama-bin", default=os.path.join(os.path.expanduser("~"), ".cache", "edgelm", "llama.cpp", "build", "bin"),
                    help="where edgelm-ref is (for the llama.cpp cross-check of the GPT-2 cases; skipped if absent)")
    ap.add_argument("--model", help="ad-hoc run on this HF folder (prints JSON)")
    ap.add_argument("--lora", help="PEFT adapter folder to merge (with --model)")
    ap.add_argument("--lora-scale", type=float, default=1.0)
    ap.add_argument("--tokens", help="comma-separated ids (with --model)")
    ap.add_argument("--out", help="write the ad-hoc JSON here instead of stdout")
    args = ap.parse_args()
    if not args.model:
        run_all(args.models, args.case, args.llama_bin)
        return
    model = Model(args.model, args.lora, args.lora_scale)
    if args.tokens:
        tokens = [int(t) for t in args.tokens.split(",")]
    elif model.forward is gpt2_logits:
        bpe = Gpt2Bpe(os.path.join(args.model, "vocab.json"), os.path.join(args.model, "merges.txt"))
        tokens = bpe.encode(open(os.path.join(REPO, TEXT), encoding="utf-8").read())[:16]
    else:
        with open(os.path.join(SMOLLM2_REF, "tokenize.json")) as f:
            tokens = json.load(f)["reference_text"]["tokens"][:16]
    obj, _ = case_json("ad-hoc", model, tokens, "given", tokens[:4], "(first 4 tokens)", None, args.lora_scale)
    if args.out:
        write_case_json(args.out, obj)
    else:
        json.dump(obj, sys.stdout)
        print()


if __name__ == "__main__":
    main()
