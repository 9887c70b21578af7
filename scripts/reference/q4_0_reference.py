#!/usr/bin/env python3
"""llama.cpp's teacher-forced logits on SmolLM2-135M converted to Q4_0 by `edgelm convert`.

Usage: scripts/reference/q4_0_reference.py MODEL.gguf

MODEL.gguf is `edgelm convert` of the Hugging Face SmolLM2-135M-Instruct checkpoint at q4_0 (what
tests/converter.rs builds; its sha256 is recorded and checked by the test). llama.cpp (as built
by scripts/reference/build-llama-cpp) runs its Q4_0 weights through its repacked x86 kernels
(q4_0_8x8: per block the exact integer sum, then one fused multiply-add of it with xd · yd per
row), the order edgelm runs for Q4_0 on every SIMD level. Writes
tests/reference/smollm2-q4_0/teacher_forced.json (format as smollm2-q4_1/teacher_forced.json).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smollm2_reference as s  # noqa: E402


def main():
    if len(sys.argv) != 2:
        s.fail("usage: scripts/reference/q4_0_reference.py MODEL.gguf")
    model = sys.argv[1]
    bin_dir = s.sh([os.path.join(HERE, "build-llama-cpp")]).stdout.strip().splitlines()[-1]
    ref = s.Ref(bin_dir, model)
    with open(s.TEXT, encoding="utf-8") as f:
        text = f.read()
    tokens = ref.tokenize([text])[0]
    base = {
        "threads": s.THREADS,
        "n_ctx": s.N_TEACHER,
        "n_batch": s.N_TEACHER,
        "n_ubatch": s.N_TEACHER,
        "type_k": "f16",
        "type_v": "f16",
        "flash_attn": "auto (llama.cpp default)",
        "logprob": "log-softmax of the raw f32 logits, computed in double",
        "build": "CPU only, GGML_NATIVE=ON, Release, see scripts/reference/build-llama-cpp",
    }
    s.OUT = os.path.join(s.REPO, "tests", "reference", "smollm2-q4_0")
    os.makedirs(s.OUT, exist_ok=True)
    s.teacher_forced(
        ref,
        tokens,
        s.sha256_file(model),
        base,
        [],
        "teacher_forced.json",
        "SmolLM2-135M-Instruct converted to Q4_0 by edgelm convert; llama.cpp token by token "
        "(its generation path), Q4_0 weights in its repacked q4_0_8x8 kernels",
    )


if __name__ == "__main__":
    main()
