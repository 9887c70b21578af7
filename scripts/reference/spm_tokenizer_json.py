#!/usr/bin/env python3
"""Rebuild a Llama 2-style Hugging Face tokenizer.json from llama.cpp's SentencePiece vocab GGUF.

Usage: scripts/reference/spm_tokenizer_json.py [--vocab GGUF] [--out DIR] [--no-check]
           [--compare TOKENIZER_JSON] [--llama-tokenize GGUF ...]
       (needs the PyPI `gguf` package; the check needs `tokenizers`)

No Llama 2 / TinyLlama tokenizer.json can be downloaded here, but llama.cpp's vocab-only
`ggml-vocab-llama-spm.gguf` (scripts/fetch-models vocab) holds the same SentencePiece model: pieces,
scores and piece types. This script writes what transformers' `LlamaConverter` writes from the
`tokenizer.model`, following its `SentencePieceExtractor.extract`:

  vocab    piece -> id, in id order;
  merges   for every piece, every split into two pieces that are both in the vocab (split at
           characters, not bytes), the splits of one piece ordered by (id left, id right); then all
           merges stably sorted by the merged piece's score, highest first. LlamaConverter gives
           <unk>, <s>, </s> score 0; the other pieces keep their SentencePiece scores;
  model    BPE, byte_fallback true, fuse_unk true, unk_token <unk>;
  added    <unk>, <s>, </s>, special, not normalized;
  normalizer Prepend("▁") then Replace(" " -> "▁") (the `legacy` Llama tokenizer), no pre-tokenizer;
  decoder  Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0);
  post_processor TemplateProcessing "<s> $A" (what LlamaTokenizerFast sets up);

plus a tokenizer_config.json with add_bos_token true, add_eos_token false and the special tokens.

Output: DIR/tokenizer.json and DIR/tokenizer_config.json (default DIR:
${EDGELM_MODELS:-~/.cache/edgelm/models}/llama-spm-tokenizer, outside hf/, whose manifest
scripts/fetch-models pins). Deterministic.

With `tokenizers` installed, the result is checked against llama.cpp's test vectors
(ggml-vocab-llama-spm.gguf.inp/.out, encoded without special tokens): this shows the file is a
faithful Hugging Face form of the vocab, independently of edgelm. The converter test
(converter/tests/spm_tokenizer.rs) builds the same file in Rust; with EDGELM_DUMP_SPM=DIR set it
leaves DIR/tokenizer.json and the converted DIR/converted.gguf. `--compare DIR/tokenizer.json`
checks that file against this one; `--llama-tokenize DIR/converted.gguf` runs llama.cpp's
llama-tokenize on the converted file over the test vectors.
"""

import argparse
import json
import os
import sys

try:
    import gguf
except ImportError as e:
    sys.exit(f"spm_tokenizer_json: {e}; needs: python3 -m pip install --user gguf")

SEP = "\n__ggml_vocab_test__\n"


def models_dir():
    return os.environ.get("EDGELM_MODELS") or os.path.expanduser("~/.cache/edgelm/models")


def field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    v = f.parts[f.data[0]]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode("utf-8")
    return v[0].item()


def extract_merges(pieces, scores):
    """transformers' SentencePieceExtractor.extract(vocab_scores) for a BPE model."""
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = []
    for piece, score in zip(pieces, scores):
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)  # stable: ties keep piece-id order
    return [[a, b] for a, b, _ in merges]


def build(vocab_gguf):
    r = gguf.GGUFReader(vocab_gguf)
    if field(r, "tokenizer.ggml.model") != "llama":
        sys.exit(f"spm_tokenizer_json: {vocab_gguf} is not a SentencePiece (llama) vocab")
    pieces = field(r, "tokenizer.ggml.tokens")
    scores = field(r, "tokenizer.ggml.scores")
    unk, bos, eos = (field(r, f"tokenizer.ggml.{k}_token_id") for k in ("unknown", "bos", "eos"))
    if (unk, bos, eos) != (0, 1, 2):
        sys.exit(f"spm_tokenizer_json: expected unk/bos/eos 0/1/2 as in Llama, got {unk}/{bos}/{eos}")
    # LlamaConverter.vocab(): the first three pieces get score 0.
    scores = [0.0, 0.0, 0.0] + list(scores[3:])
    merges = extract_merges(pieces, scores)

    def added(i):
        return {"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}

    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(unk), added(bos), added(eos)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": pieces[bos], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": pieces[bos], "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": pieces[bos], "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {pieces[bos]: {"id": pieces[bos], "ids": [bos], "tokens": [pieces[bos]]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": pieces[unk],
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {p: i for i, p in enumerate(pieces)},
            "merges": merges,
        },
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": pieces[bos],
        "eos_token": pieces[eos],
        "unk_token": pieces[unk],
        "pad_token": None,
        "legacy": True,
        "model_max_length": 2048,
        "tokenizer_class": "LlamaTokenizer",
    }
    return tok, config


def read_tests(vocab_gguf):
    with open(vocab_gguf + ".inp", encoding="utf-8") as f:
        inputs = f.read().split(SEP)
    # Like test-tokenizer-0: the separator after the last test ends it, it does not start another.
    if inputs and inputs[-1] == "":
        inputs.pop()
    with open(vocab_gguf + ".out", encoding="utf-8") as f:
        outputs = [[int(t) for t in line.split()] for line in f.read().splitlines()]
    assert len(inputs) == len(outputs) and len(inputs) > 30
    return list(zip(inputs, outputs))


def check(path, vocab_gguf):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("spm_tokenizer_json: `tokenizers` not installed; skipping the check", file=sys.stderr)
        return True
    t = Tokenizer.from_file(path)
    tests = read_tests(vocab_gguf)
    bad = 0
    for text, want in tests:
        got = t.encode(text, add_special_tokens=False).ids
        if got != want:
            bad += 1
            print(f"  {text!r}\n    llama.cpp {want}\n    HF        {got}", file=sys.stderr)
    print(f"spm_tokenizer_json: HF tokenizers on {path}: {len(tests) - bad}/{len(tests)} "
          "llama.cpp test vectors equal", file=sys.stderr)
    return bad == 0


def llama_tokenize(model, vocab_gguf, exe):
    """llama.cpp's own tokenizer on `model` (e.g. the converted GGUF) against the test vectors."""
    import subprocess
    tests = read_tests(vocab_gguf)
    bad = 0
    for text, want in tests:
        p = subprocess.run([exe, "-m", model, "--stdin", "--ids", "--no-bos", "--no-parse-special",
                            "--no-escape", "--log-disable"], input=text.encode("utf-8"),
                           capture_output=True, check=True)
        got = json.loads(p.stdout.decode("utf-8").strip().splitlines()[-1])
        if got != want:
            bad += 1
            print(f"  {text!r}\n    .out      {want}\n    llama.cpp {got}", file=sys.stderr)
    print(f"spm_tokenizer_json: llama-tokenize on {model}: {len(tests) - bad}/{len(tests)} "
          "test vectors equal", file=sys.stderr)
    return bad == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", default=os.path.join(models_dir(), "vocab", "ggml-vocab-llama-spm.gguf"))
    ap.add_argument("--out", default=os.path.join(models_dir(), "llama-spm-tokenizer"))
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--compare", help="a tokenizer.json to compare (vocab, merges, added tokens)")
    ap.add_argument("--llama-tokenize", metavar="GGUF", action="append", default=[],
                    help="also run llama.cpp's llama-tokenize on GGUF over the test vectors (repeatable)")
    ap.add_argument("--llama-tokenize-bin", default=os.path.expanduser(
        "~/.cache/edgelm/llama.cpp/build/bin/llama-tokenize"))
    a = ap.parse_args()
    tok, config = build(a.vocab)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "tokenizer.json")
    for name, obj in (("tokenizer.json", tok), ("tokenizer_config.json", config)):
        tmp = os.path.join(a.out, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, os.path.join(a.out, name))
    print(f"spm_tokenizer_json: wrote {path} ({len(tok['model']['vocab'])} pieces, "
          f"{len(tok['model']['merges'])} merges)", file=sys.stderr)
    ok = True
    if not a.no_check:
        ok = check(path, a.vocab)
    if a.compare:
        with open(a.compare, encoding="utf-8") as f:
            other = json.load(f)
        for key in ("vocab", "merges", "byte_fallback", "unk_token"):
            same = other["model"].get(key) == tok["model"][key]
            ok &= same
            print(f"spm_tokenizer_json: model.{key} {'equal' if same else 'DIFFERS'} in {a.compare}",
                  file=sys.stderr)
        for key in ("added_tokens", "normalizer", "pre_tokenizer", "decoder"):
            same = other.get(key) == tok[key]
            ok &= same
            print(f"spm_tokenizer_json: {key} {'equal' if same else 'DIFFERS'} in {a.compare}",
                  file=sys.stderr)
    for model in a.llama_tokenize:
        ok &= llama_tokenize(model, a.vocab, a.llama_tokenize_bin)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
