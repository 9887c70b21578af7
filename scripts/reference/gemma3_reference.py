#!/usr/bin/env python3
"""Produce the committed llama.cpp reference outputs for Gemma 3 270M Q4_K_M.

Usage: scripts/reference/gemma3_reference.py

Writes tests/reference/gemma3-q4_k_m/{teacher_forced,greedy,perplexity,tokenize}.json with
scripts/reference/edgelm-ref (llama.cpp built by scripts/reference/build-llama-cpp) and
llama-perplexity, in the formats of tests/reference/smollm2-q4_1/README.md. Teacher forcing runs
one token per llama_decode (the generation path) over 640 tokens, past the 512-token window.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smollm2_reference as base  # noqa: E402

OUT = os.path.join(base.REPO, "tests", "reference", "gemma3-q4_k_m")
N_TEACHER = 640
N_GREEDY = 32
PERPLEXITY_CTX = 256
PROMPTS = [
    ("capital", "The capital of France is"),
    ("chat", "<start_of_turn>user\nWhat is the tallest mountain in the world?<end_of_turn>\n<start_of_turn>model\n"),
    ("code", "def fibonacci(n):\n    "),
    ("story", "Once upon a time, in a small village by the sea,"),
    ("question", "Q: What do bees make?\nA:"),
]


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=True)
        f.write("\n")
    base.log(f"wrote {os.path.relpath(path, base.REPO)}")


def main():
    bin_dir = os.path.expanduser("~/.cache/edgelm/llama.cpp/build/bin")
    model = os.path.expanduser("~/.cache/edgelm/models/gemma3/gemma-3-270m-q4_k_m.gguf")
    sha = base.sha256_file(model)
    ref = base.Ref(bin_dir, model)
    common = {"model_sha256": sha, "llama_cpp_version": base.LLAMA_CPP_VERSION,
              "produced_by": "scripts/reference/gemma3_reference.py"}
    text = open(base.TEXT, encoding="utf-8").read()

    strings = [s for s in base.TOKENIZE_STRINGS] + [p for _, p in PROMPTS] + [text]
    toks = ref.tokenize(strings)
    write("tokenize.json", {**common, "add_special": True, "parse_special": True,
                            "cases": [{"text": s, "tokens": t} for s, t in zip(strings[:-1], toks[:-1])],
                            "reference_text": {"file": base.TEXT_REL, "tokens": toks[-1]}})

    ids = toks[-1][:N_TEACHER]
    rows, _ = ref.logits(ids, 2, ["--ubatch", "1"])
    write("teacher_forced.json", {**common, "settings": {"threads": base.THREADS, "ubatch": 1, "kv": "f16", "flash_attn": "auto"},
                                  "tokens": ids, "argmax": [r["argmax"] for r in rows],
                                  "top2": [[[i, base.rnd(l)] for i, l in r["top"]] for r in rows],
                                  "logprob_next": [base.rnd(r["lp_next"]) for r in rows[:-1]]})

    prompts = []
    for (name, p), t in zip(PROMPTS, toks[len(base.TOKENIZE_STRINGS):]):
        steps, _ = ref.greedy(t, N_GREEDY)
        prompts.append({"name": name, "prompt": p, "prompt_tokens": t,
                        "generated": [s["token"] for s in steps], "steps": steps})
    write("greedy.json", {**common, "n_generate": N_GREEDY, "prompts": prompts})

    args = ["-f", base.TEXT, "-c", str(PERPLEXITY_CTX), "-b", str(PERPLEXITY_CTX), "-t", str(base.THREADS)]
    out = base.sh([os.path.join(bin_dir, "llama-perplexity"), "-m", model, *args], merge=True).stdout
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
    if not m:
        base.fail("no PPL in llama-perplexity output")
    write("perplexity.json", {**common, "command": "llama-perplexity -m MODEL " + " ".join(args).replace(base.REPO + "/", ""),
                              "ctx": PERPLEXITY_CTX, "ppl": float(m.group(1)), "ppl_stderr": float(m.group(2)),
                              "n_text_tokens": len(toks[-1])})


if __name__ == "__main__":
    main()
