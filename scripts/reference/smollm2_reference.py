#!/usr/bin/env python3
"""Produce the committed llama.cpp reference outputs for SmolLM2-135M-Instruct Q4_1.

Usage: scripts/reference/smollm2_reference.py [PART ...]

PART: teacher, teacher_q8, perplexity, greedy, tokenize, info, bench (default: all of them).

Writes tests/reference/smollm2-q4_1/{teacher_forced,teacher_forced_f32kv_nofa,teacher_forced_q8kv,perplexity,
greedy,tokenize,model_info,bench}.json and bench.txt (see README.md there for the formats). Everything comes from llama.cpp as vendored in llama-cpp-python==0.3.36,
built by scripts/reference/build-llama-cpp; the model from scripts/fetch-models.
Besides running llama.cpp it cross-checks llama.cpp against itself through independent paths
(llama-tokenize vs libllama tokenization, llama-simple vs our greedy loop, llama-perplexity vs
perplexity recomputed from per-position logits) and fails if they disagree.
"""

import hashlib
import json
import math
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "reference", "smollm2-q4_1")
TEXT = os.path.join(REPO, "tests", "data", "text", "reference.txt")
TEXT_REL = "tests/data/text/reference.txt"
THREADS = 2
N_TEACHER = 512
N_GREEDY = 16

LLAMA_CPP_VERSION = (
    "llama.cpp vendored in llama-cpp-python==0.3.36 (sdist sha256 "
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e), ggml 0.25.3"
)

PROMPTS = [
    ("capital", "The capital of France is"),
    (
        "chatml",
        "<|im_start|>user\nWhat is the tallest mountain in the world?<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    ("code", "def fibonacci(n):\n    "),
    ("list", "Here is a list of three fruits:\n1."),
    ("story", "Once upon a time, in a small village by the sea,"),
    ("numbers", "1, 2, 3, 4, 5,"),
    (
        "chatml_system",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nName a primary color.<|im_end|>\n<|im_start|>assistant\n",
    ),
    ("question", "Q: What do bees make?\nA:"),
]

TOKENIZE_STRINGS = [
    "Hello world",
    " Hello world",
    "Hello, World! How are you?",
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t\tindented\ttabs",
    "multiple   spaces    between words",
    "The year 2024 had 366 days; 3.14159 is pi, 1,000,000 is a million.",
    "1234567890",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "\u4f60\u597d\uff0c\u4e16\u754c",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "emoji: \U0001f600\U0001f680 \u2764\ufe0f \U0001f44d\U0001f3fd",
    "I'm sure it's the dog's ball, isn't it? We'll see, they've said.",
    "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after a special token",
    "def f(x):\n    return x ** 2  # square\n",
    "https://example.com/path?query=1&x=y#frag",
    "UPPER lower MiXeD CamelCase snake_case kebab-case",
]


def log(msg):
    print(f"smollm2_reference: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(f"error: {msg}")
    sys.exit(1)


def sh(cmd, stdin=None, check=True, merge=False):
    """Run cmd; with merge=True stderr is folded into stdout in the order it was written."""
    err = subprocess.STDOUT if merge else subprocess.PIPE
    res = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=err, text=True)
    if check and res.returncode != 0:
        fail(f"{' '.join(cmd)} failed ({res.returncode}):\n{(res.stderr or res.stdout)[-3000:]}")
    return res


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=True)
        f.write("\n")
    log(f"wrote {os.path.relpath(path, REPO)}")


def rnd(x):
    # Six decimals keeps the files small and is far below any tolerance a test could use.
    return round(x, 6)


class Ref:
    def __init__(self, bin_dir, model):
        self.bin = bin_dir
        self.model = model
        self.tool = os.path.join(bin_dir, "edgelm-ref")

    def info(self):
        out = sh([self.tool, "info", self.model]).stdout
        return dict(line.split("\t", 1) for line in out.splitlines())

    def tokenize(self, strings):
        stdin = "".join(s.encode().hex() + "\n" for s in strings)
        out = sh([self.tool, "tokenize", self.model], stdin).stdout.splitlines()
        if len(out) != len(strings):
            fail("tokenize: wrong number of output lines")
        return [[int(t) for t in line.split()] for line in out]

    def pieces(self, ids):
        out = sh([self.tool, "pieces", self.model], " ".join(map(str, ids))).stdout.splitlines()
        return [bytes.fromhex(h) for h in out]

    def text(self, ids):
        return b"".join(self.pieces(ids)).decode("utf-8", errors="replace")

    def logits(self, ids, topk, extra=()):
        res = sh(
            [self.tool, "logits", self.model, "-t", str(THREADS), "-k", str(topk), *extra],
            " ".join(map(str, ids)),
        )
        rows = []
        for line in res.stdout.splitlines():
            f = line.split()
            top = [[int(p.split(":")[0]), float(p.split(":")[1])] for p in f[3:]]
            rows.append({"pos": int(f[0]), "argmax": int(f[1]), "lp_next": float(f[2]), "top": top})
        if len(rows) != len(ids):
            fail("logits: wrong number of rows")
        return rows, res.stderr

    def greedy(self, ids, n, extra=()):
        res = sh(
            [self.tool, "greedy", self.model, "-t", str(THREADS), "-k", "5", "-n", str(n), *extra],
            " ".join(map(str, ids)),
        )
        steps = []
        for line in res.stdout.splitlines():
            f = line.split()
            top = [[int(p.split(":")[0]), rnd(float(p.split(":")[1]))] for p in f[1:]]
            steps.append({"token": int(f[0]), "top5": top})
        return steps, res.stderr


def resolved_settings(stderr):
    """What llama.cpp actually used, read back from its context log."""
    s = {}
    m = re.search(r"flash_attn\s*=\s*(\S+)", stderr)
    if m:
        s["flash_attn_requested"] = m.group(1)
    m = re.search(r"Flash Attention (enabled|disabled)", stderr)
    if m:
        s["flash_attn_resolved"] = m.group(1)
    m = re.search(r"K \((\w+)\):.*V \((\w+)\)", stderr)
    if m:
        s["kv_types_from_log"] = [m.group(1), m.group(2)]
    return s


def teacher_forced(ref, text_tokens, model_sha, base_settings, extra, name, note):
    ids = text_tokens[:N_TEACHER]
    rows, stderr = ref.logits(ids, 2, extra)
    settings = dict(base_settings)
    settings.update(resolved_settings(stderr))
    obj = {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py via edgelm-ref logits",
        "note": note,
        "settings": settings,
        "text_file": TEXT_REL,
        "n_tokens": len(ids),
        "tokens": ids,
        "argmax": [r["argmax"] for r in rows],
        "top2": [[[t, rnd(lp)] for t, lp in r["top"]] for r in rows],
        "logprob_next": [rnd(r["lp_next"]) for r in rows[:-1]],
    }
    write_json(name, obj)
    return rows, stderr


def recompute_ppl(ref, text_tokens, n_ctx, add_bos, bos, extra=()):
    """llama-perplexity's algorithm, redone from per-position logits (see README.md)."""
    n_chunk = len(text_tokens) // n_ctx
    first = n_ctx // 2
    nll, count = 0.0, 0
    for c in range(n_chunk):
        chunk = list(text_tokens[c * n_ctx : (c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        rows, _ = ref.logits(chunk, 1, extra)
        for p in range(first, n_ctx - 1):
            nll -= rows[p]["lp_next"]
            count += 1
    return math.exp(nll / count), n_chunk, count


def run_perplexity(bin_dir, model, n_ctx, extra):
    args = ["-f", TEXT, "-c", str(n_ctx), "-t", str(THREADS), *extra]
    raw = sh([os.path.join(bin_dir, "llama-perplexity"), "-m", model, *args], merge=True).stdout
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", raw)
    if not m:
        fail(f"no final PPL in llama-perplexity output for {args}")
    ppl, err = float(m.group(1)), float(m.group(2))
    m = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)", raw)
    chunks, batch, n_seq = int(m.group(1)), int(m.group(3)), int(m.group(4))
    running = [float(v) for _, v in re.findall(r"\[(\d+)\]([0-9.]+),", raw)]
    # Drop the elapsed-time prefix of each log line so reruns only differ where numbers do.
    lines = [re.sub(r"^\d+\.\d+\.\d+\.\d+ [IWE] ", "", l) for l in raw.splitlines() if l.strip()]
    command = "llama-perplexity -m MODEL " + " ".join(args).replace(TEXT, TEXT_REL)
    return {
        "command": command,
        "ppl": ppl,
        "ppl_stderr": err,
        "chunks": chunks,
        "n_batch": batch,
        "n_seq_per_batch": n_seq,
        "running_ppl": running,
        "raw_output_tail": "\n".join(l.replace(model, "MODEL") for l in lines[-8:]),
    }


def perplexity(ref, bin_dir, model, text_tokens, info, model_sha):
    results = []
    add_bos = info["add_bos"] == "1"
    bos = int(info["bos"])
    for n_ctx in (128, 256):
        # 1. The plain command: default n_batch 2048 packs 2048/n_ctx chunks as parallel sequences.
        plain = run_perplexity(bin_dir, model, n_ctx, [])
        # 2. One chunk per batch, as a runtime that evaluates chunk after chunk would.
        seq = run_perplexity(bin_dir, model, n_ctx, ["-b", str(n_ctx)])
        # 3. Same with an f32 KV cache and no flash attention: the most precise llama.cpp setting.
        f32 = run_perplexity(bin_dir, model, n_ctx, ["-b", str(n_ctx), "-fa", "off", "-ctk", "f32", "-ctv", "f32"])
        r_seq, n_chunk, scored = recompute_ppl(ref, text_tokens, n_ctx, add_bos, bos)
        r_f32, _, _ = recompute_ppl(ref, text_tokens, n_ctx, add_bos, bos, ("--kv", "f32", "--fa", "off"))
        for run, rec in ((seq, r_seq), (f32, r_f32)):
            if run["chunks"] != n_chunk:
                fail(f"chunk count differs: llama-perplexity {run['chunks']}, recomputed {n_chunk}")
            # llama-perplexity prints 4 decimals; the recomputation must agree to that precision.
            if abs(rec - run["ppl"]) > 1e-4 * run["ppl"] + 5e-5:
                fail(f"{run['command']}: {run['ppl']} but recomputed {rec}")
            run["recomputed_ppl_from_edgelm_ref"] = rnd(rec)
        plain["settings"] = {"type_k": "f16", "type_v": "f16", "flash_attn": "auto (enabled)", "n_ubatch": 512}
        seq["settings"] = dict(plain["settings"])
        f32["settings"] = {"type_k": "f32", "type_v": "f32", "flash_attn": "off", "n_ubatch": n_ctx}
        results.append({
            "ctx": n_ctx,
            "ppl": plain["ppl"],
            "chunks": n_chunk,
            "scored_tokens": scored,
            "ppl_one_chunk_per_batch": seq["ppl"],
            "ppl_f32kv_nofa": f32["ppl"],
            "raw_output_tail": plain["raw_output_tail"],
            "runs": {"default": plain, "one_chunk_per_batch": seq, "f32kv_nofa": f32},
        })
        log(f"ppl -c {n_ctx}: default {plain['ppl']}, one chunk/batch {seq['ppl']} "
            f"(recomputed {r_seq:.4f}), f32kv/nofa {f32['ppl']} (recomputed {r_f32:.4f}); {n_chunk} chunks")
    write_json("perplexity.json", {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py running llama-perplexity (threads 2)",
        "text_file": TEXT_REL,
        "n_text_tokens": len(text_tokens),
        "add_bos": add_bos,
        "results": results,
    })


def llama_simple_text(bin_dir, model, prompt, n):
    res = sh([os.path.join(bin_dir, "llama-simple"), "-m", model, "-n", str(n), prompt])
    return res.stdout


def greedy(ref, bin_dir, model, info, model_sha, base_settings):
    out = []
    stderr_all = ""
    ids_all = ref.tokenize([p for _, p in PROMPTS])
    for (name, prompt), ids in zip(PROMPTS, ids_all):
        steps, stderr = ref.greedy(ids, N_GREEDY)
        stderr_all = stderr
        gen = [s["token"] for s in steps]
        steps_f32, _ = ref.greedy(ids, N_GREEDY, ("--kv", "f32", "--fa", "off"))
        gen_f32 = [s["token"] for s in steps_f32]
        text = ref.text(gen)
        # llama-simple: llama.cpp's own prompt tokenization and greedy sampler, printed as text.
        simple = llama_simple_text(bin_dir, model, prompt, len(gen))
        shown = gen[:-1] if len(gen) < N_GREEDY else gen  # llama-simple does not print the EOG token
        expect = ref.text(ids[1:] if info["add_bos"] == "1" else ids) + ref.text(shown)
        if simple.rstrip("\n") != expect.rstrip("\n"):
            fail(f"greedy {name}: llama-simple printed {simple!r}, we expect {expect!r}")
        out.append({
            "name": name,
            "prompt": prompt,
            "prompt_tokens": ids,
            "generated": gen,
            "generated_text": text,
            "stopped_at_eog": len(gen) < N_GREEDY,
            "generated_f32kv_nofa": gen_f32,
            "common_prefix_with_f32kv_nofa": next(
                (i for i, (a, b) in enumerate(zip(gen, gen_f32)) if a != b), min(len(gen), len(gen_f32))
            ),
            "steps": steps,
        })
        log(f"greedy {name}: {text!r}")
    settings = dict(base_settings)
    settings.update(resolved_settings(stderr_all))
    settings["decode"] = "prompt in one batch (logits of the last position), then one token per decode"
    write_json("greedy.json", {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py via edgelm-ref greedy; text checked against llama-simple",
        "settings": settings,
        "n_generate": N_GREEDY,
        "prompts": out,
    })


def tokenize(ref, bin_dir, model, info, model_sha, text_tokens):
    ids_all = ref.tokenize(TOKENIZE_STRINGS)
    cases = []
    tok_bin = os.path.join(bin_dir, "llama-tokenize")
    for s, ids in zip(TOKENIZE_STRINGS, ids_all):
        # llama-tokenize goes through common_tokenize: an independent path to the same vocab.
        if s:
            res = sh([tok_bin, "-m", model, "-p", s, "--ids", "--log-disable"])
            other = json.loads(res.stdout.strip().splitlines()[-1])
            if other != ids:
                fail(f"tokenize {s!r}: edgelm-ref {ids} vs llama-tokenize {other}")
        cases.append({"text": s, "tokens": ids, "pieces": [p.decode("utf-8", errors="replace") for p in ref.pieces(ids)] if ids else []})
    write_json("tokenize.json", {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py via edgelm-ref tokenize; cross-checked with llama-tokenize",
        "add_special": True,
        "parse_special": True,
        "add_bos": info["add_bos"] == "1",
        "add_eos": info["add_eos"] == "1",
        "cases": cases,
        "reference_text": {"file": TEXT_REL, "n_tokens": len(text_tokens), "tokens": text_tokens},
    })


def bench(bin_dir, model, model_sha):
    exe = os.path.join(bin_dir, "llama-bench")
    args = ["-m", model, "-p", "64", "-n", "64", "-r", "5", "-t", "1,2"]
    # One run, both formats: JSON on stdout for the numbers, the usual table on stderr for people.
    res = sh([exe, *args, "-o", "json", "-oe", "md"])
    table = [l for l in res.stderr.splitlines() if l.startswith("|") or l.startswith("build:")]
    with open(os.path.join(OUT, "bench.txt"), "w") as f:
        f.write("$ llama-bench " + " ".join(args).replace(model, "MODEL") + "\n")
        f.write("\n".join(table) + "\n")
    runs = json.loads(res.stdout)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    rows = []
    for r in runs:
        rows.append({
            "test": "pp64" if r["n_prompt"] else "tg64",
            "threads": r["n_threads"],
            "avg_ts": r["avg_ts"],
            "stddev_ts": r["stddev_ts"],
            "samples_ts": r.get("samples_ts"),
            "flash_attn": r.get("flash_attn"),
            "type_k": r.get("type_k"),
            "type_v": r.get("type_v"),
            "n_batch": r.get("n_batch"),
            "n_ubatch": r.get("n_ubatch"),
        })
    info = runs[0]
    write_json("bench.json", {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py running llama-bench",
        "command": "llama-bench " + " ".join(args).replace(model, "MODEL"),
        "cpu_info": info.get("cpu_info"),
        "backends": info.get("backends"),
        "loadavg_after": load,
        "note": "2 shared cores; other jobs may have been running, so treat as a rough baseline",
        "results": rows,
    })
    log("bench: " + ", ".join(f"{r['test']}@t{r['threads']}={r['avg_ts']:.1f} t/s" for r in rows))


def main():
    all_parts = {"teacher", "teacher_q8", "perplexity", "greedy", "tokenize", "info", "bench"}
    parts = set(sys.argv[1:]) or all_parts
    if parts - all_parts:
        fail(f"unknown part(s) {sorted(parts - all_parts)}; parts are {sorted(all_parts)}")
    models = sh([os.path.join(REPO, "scripts", "fetch-models"), "smollm2", "vocab"]).stdout.strip()
    model = os.path.join(models, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    bin_dir = sh([os.path.join(HERE, "build-llama-cpp")]).stdout.strip().splitlines()[-1]
    model_sha = sha256_file(model)
    os.makedirs(OUT, exist_ok=True)
    ref = Ref(bin_dir, model)
    info = ref.info()
    log(f"model info: { {k: v for k, v in info.items() if k != 'chat_template_hex'} }")

    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    text_tokens = ref.tokenize([text])[0]
    # llama-tokenize on the file (common_tokenize, add_special, parse_special) as a cross-check.
    res = sh([os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-f", TEXT, "--ids", "--log-disable"])
    if json.loads(res.stdout.strip().splitlines()[-1]) != text_tokens:
        fail("llama-tokenize and edgelm-ref disagree on the reference text")
    log(f"reference text: {len(text_tokens)} tokens")

    base = {
        "threads": THREADS,
        "n_ctx": N_TEACHER,
        "n_batch": N_TEACHER,
        "n_ubatch": N_TEACHER,
        "type_k": "f16",
        "type_v": "f16",
        "flash_attn": "auto (llama.cpp default)",
        "add_special": True,
        "parse_special": True,
        "logprob": "log-softmax of the raw f32 logits, computed in double",
        "build": "CPU only, GGML_NATIVE=ON, Release, see scripts/reference/build-llama-cpp",
    }
    if "teacher" in parts:
        teacher_both(ref, text_tokens, model_sha, base)
    if "teacher_q8" in parts:
        teacher_q8(ref, text_tokens, model_sha, base)
    if "perplexity" in parts:
        perplexity(ref, bin_dir, model, text_tokens, info, model_sha)
    if "greedy" in parts:
        greedy(ref, bin_dir, model, info, model_sha, dict(base, n_ctx="prompt + 16", n_batch="prompt length"))
    if "tokenize" in parts:
        tokenize(ref, bin_dir, model, info, model_sha, text_tokens)
    if "info" in parts:
        model_info(info, model_sha, text_tokens)
    if "bench" in parts:
        bench(bin_dir, model, model_sha)


def teacher_both(ref, text_tokens, model_sha, base):
    # The main file decodes one token per llama_decode: llama.cpp's generation path, which is how
    # the runtime evaluates tokens. The whole-sequence batch (llama.cpp's prompt path) takes a
    # tiled flash-attention kernel that rounds differently; it is kept for comparison.
    seq = dict(base, n_batch=1, n_ubatch=1, decode="one token per llama_decode")
    teacher_forced(ref, text_tokens, model_sha, seq, ("--ubatch", "1"), "teacher_forced.json",
                   "llama.cpp defaults (f16 KV cache, flash attention auto), token by token")
    teacher_forced(ref, text_tokens, model_sha, base, (), "teacher_forced_batched.json",
                   "llama.cpp defaults: f16 KV cache, flash attention auto; the 512 tokens in one batch")
    var = dict(base, type_k="f32", type_v="f32", flash_attn="off")
    teacher_forced(ref, text_tokens, model_sha, var, ("--kv", "f32", "--fa", "off"),
                   "teacher_forced_f32kv_nofa.json",
                   "same tokens with an f32 KV cache and flash attention off, to show how much "
                   "llama.cpp moves under its own setting changes")


def teacher_q8(ref, text_tokens, model_sha, base):
    # The q8_0 KV cache (edgelm --kv-type q8_0), token by token; a quantized V cache needs flash
    # attention on. One thread: under 512 cells the thread count changes no number, and two
    # OpenMP threads on a busy 2-core machine crawled (15 minutes were not enough).
    var = dict(base, type_k="q8_0", type_v="q8_0", flash_attn="on", n_batch=1, n_ubatch=1,
               threads=1, decode="one token per llama_decode")
    teacher_forced(ref, text_tokens, model_sha, var,
                   ("--kv", "q8_0", "--fa", "on", "--ubatch", "1", "-t", "1"),
                   "teacher_forced_q8kv.json",
                   "q8_0 K and V caches with flash attention, token by token")


def model_info(info, model_sha, text_tokens):
    tmpl = bytes.fromhex(info["chat_template_hex"]).decode()
    write_json("model_info.json", {
        "model_sha256": model_sha,
        "llama_cpp_version": LLAMA_CPP_VERSION,
        "produced_by": "scripts/reference/smollm2_reference.py via edgelm-ref info",
        "n_vocab": int(info["n_vocab"]),
        "n_ctx_train": int(info["n_ctx_train"]),
        "add_bos": info["add_bos"] == "1",
        "add_eos": info["add_eos"] == "1",
        "bos": int(info["bos"]),
        "eos": int(info["eos"]),
        "eot": int(info["eot"]),
        "rope_type": int(info["rope_type"]),
        "rope_freq_base": info["rope_freq_base"],
        "tokenizer_model": info["tokenizer.ggml.model"],
        "tokenizer_pre": info["tokenizer.ggml.pre"],
        "tokenizer_add_bos_token_key": info["tokenizer.ggml.add_bos_token"],
        "chat_template": tmpl,
        "system_info": info["system_info"],
        "reference_text_tokens": len(text_tokens),
    })


if __name__ == "__main__":
    main()
