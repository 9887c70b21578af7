#!/usr/bin/env python3
"""Write a tiny Llama-architecture Hugging Face checkpoint for the microcontroller firmware test.

Usage: scripts/reference/mcu_tiny_model.py OUT_DIR [--width W] [--layers L] [--ff F] [--vocab V]
                                              [--heads H] [--kv-heads K] [--seed S]
       then: edgelm convert OUT_DIR -o tiny.gguf --quant q8_0

No real model is small enough for a Cortex-M's few MB, so this makes one: LlamaForCausalLM at
width 64, 2 layers, 4 heads / 2 KV heads of 16, FFN 192, an untied output head, and
the SmolLM2 tokenizer trimmed to its first 768 tokens (17 control tokens, the 256 byte symbols,
the first merges; only merges whose parts and result survive the trim are kept, so it is still a
consistent byte-level BPE: any text encodes). The weights are random with a fixed seed, scaled so
that activations keep unit size and the logits spread widely (a greedy choice is then far from a
tie, so one-ulp differences between kernels do not flip it). Not a trained model: its text is
gibberish, which is all the firmware test needs.

Output: OUT_DIR/{config.json, model.safetensors, tokenizer.json, tokenizer_config.json}, written
to a temporary folder and renamed into place. Deterministic: the same numpy gives the same bytes.
Needs: numpy, gguf, safetensors (scripts/fetch-models installs them) and the cached SmolLM2 GGUF
(`scripts/fetch-models smollm2`), whose tokenizer metadata is read.
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_checkpoints as hc  # noqa: E402  (shares the SmolLM2 tokenizer.json writer and helpers)

SEED = 20261128


def trimmed_tokenizer(n_vocab):
    """SmolLM2's tokens, types and merges, cut to the first n_vocab tokens."""
    models = os.environ.get("EDGELM_MODELS", os.path.expanduser("~/.cache/edgelm/models"))
    r = hc.gguf.GGUFReader(hc.need(models, hc.SMOLLM2_GGUF, hc.SMOLLM2_SHA, "smollm2"))
    g = lambda k: hc.gguf_field(r, k)  # noqa: E731
    tokens = g("tokenizer.ggml.tokens")[:n_vocab]
    types = g("tokenizer.ggml.token_type")[:n_vocab]
    keep = set(tokens)
    merges = [m for m in g("tokenizer.ggml.merges") if all(p in keep for p in m.split(" ")) and m.replace(" ", "") in keep]
    return tokens, types, merges


def weights(a, rng):
    """HF name -> float32 array; linear layers ~ N(0, 1/fan_in) so activations keep unit scale."""
    w, f, n_layer = a.width, a.ff, a.layers
    hd = w // a.heads
    lin = lambda o, i: (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)  # noqa: E731
    norm = lambda n: (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    out = {"model.embed_tokens.weight": rng.standard_normal((a.vocab, w)).astype(np.float32)}
    for l in range(n_layer):
        p = f"model.layers.{l}."
        out[p + "self_attn.q_proj.weight"] = lin(a.heads * hd, w)
        out[p + "self_attn.k_proj.weight"] = lin(a.kv_heads * hd, w)
        out[p + "self_attn.v_proj.weight"] = lin(a.kv_heads * hd, w)
        out[p + "self_attn.o_proj.weight"] = lin(w, a.heads * hd)
        out[p + "mlp.gate_proj.weight"] = lin(f, w)
        out[p + "mlp.up_proj.weight"] = lin(f, w)
        out[p + "mlp.down_proj.weight"] = lin(w, f)
        out[p + "input_layernorm.weight"] = norm(w)
        out[p + "post_attention_layernorm.weight"] = norm(w)
    out["model.norm.weight"] = norm(w)
    # An output head of its own: tied to N(0, 1) embeddings, the input token's own row would win
    # every step (the residual stream is mostly that embedding) and greedy would only repeat it.
    out["lm_head.weight"] = (2.0 * lin(a.vocab, w)).astype(np.float32)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ff", type=int, default=192)
    ap.add_argument("--vocab", type=int, default=768)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    if a.width % a.heads or a.heads % a.kv_heads or a.vocab < 273 + 8:
        sys.exit("mcu_tiny_model: width must divide by heads, heads by kv-heads; vocab >= 281")

    tokens, types, merges = trimmed_tokenizer(a.vocab)
    w = weights(a, np.random.default_rng(a.seed))
    bos, eos = 1, 2  # <|im_start|>, <|im_end|> as in SmolLM2-Instruct
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": a.width // a.heads,
        "hidden_act": "silu",
        "hidden_size": a.width,
        "intermediate_size": a.ff,
        "max_position_embeddings": a.ctx,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "vocab_size": a.vocab,
    }
    tok_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "clean_up_tokenization_spaces": False,
        "model_max_length": a.ctx,
        "tokenizer_class": "GPT2Tokenizer",
    }

    def build(d):
        hc.save_file(w, os.path.join(d, "model.safetensors"), metadata=hc.ST_META)
        hc.write_json(os.path.join(d, "config.json"), config)
        hc.write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
        hc.write_json(os.path.join(d, "tokenizer.json"), hc.smollm2_tokenizer_json(tokens, types, merges))

    out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    hc.write_folder(os.path.dirname(out), os.path.basename(out), build)
    n_params = sum(x.size for x in w.values())
    print(f"mcu_tiny_model: {out}: {n_params} parameters, vocab {a.vocab} ({len(merges)} merges)", file=sys.stderr)


if __name__ == "__main__":
    main()
