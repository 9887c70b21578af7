#!/usr/bin/env python3
"""Write the golden files that pin edgelm's quant module to ggml's numerics.

Two independent references:
  * the PyPI `gguf` package (gguf-py, numpy): quantize for F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
    dequantize for every weight type;
  * ggml's own C code (ggml-quants.c and ggml-cpu/quants.c from the llama.cpp copy vendored in the PyPI
    source package llama-cpp-python==0.3.36), compiled here into a small shared library with
    -ffp-contract=off and called through ctypes: the reference quantizers quantize_row_*_ref (the only
    source for the K-quants, Q8_1 and Q8_K) and the scalar dot products (ggml_vec_dot_*_generic, built with GGML_CPU_GENERIC).
Where both can answer, this script asserts that they agree bit for bit.

Output: runtime/tests/data/quant/<type>.bin, one file per type, read by runtime/tests/quant.rs.
Format (little-endian): magic b"EQG1", then records until EOF:
  u8 name length, name (ASCII), u8 kind (0 = f32, 1 = u8), u32 element count, the elements.
Records: input (f32), quant (u8: reference quantization of input), dequant (f32: dequantize(quant)),
rand_bytes (u8: random bytes with finite f16/f32 scale fields), rand_dequant (f32), act_input (f32),
act_quant (u8: act_input quantized to the type's vec_dot type), dot and rand_dot (f32[1]: ggml's scalar
dot product of quant resp. rand_bytes with act_quant).

Usage: pip install gguf numpy; python3 scripts/reference/quant_golden.py
The llama.cpp sources come from $LLAMA_CPP_DIR (a llama.cpp checkout) when set, else from the sdist
(sha256-checked) in ~/.cache/edgelm/models/src/ or .cache/quant-ref/, downloaded there with pip if
missing. Needs gcc. Rerunning rewrites identical files (fixed seed).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "runtime" / "tests" / "data" / "quant"
CACHE = ROOT / ".cache" / "quant-ref"
SDIST = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST_PREFIX = "llama_cpp_python-0.3.36/vendor/llama.cpp/"

QK_K = 256

# Symbols ggml-quants.c needs from the rest of ggml; none of them is on the paths used here except the
# fp16 table, which ggml-cpu fills at start-up and we fill the same way (exact conversion).
STUB_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
float ggml_table_f32_f16[1 << 16];
static float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    float f;
    if (e == 0) { f = ldexpf((float)m, -24); memcpy(&u, &f, 4); u |= sign; }
    else if (e == 31) { u = sign | 0x7f800000u | (m << 13); }
    else { u = sign | ((e + 112) << 23) | (m << 13); }
    memcpy(&f, &u, 4);
    return f;
}
__attribute__((constructor)) static void init_table(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) ggml_table_f32_f16[i] = h2f((uint16_t)i);
}
void ggml_abort(const char * file, int line, const char * fmt, ...) { (void)file; (void)line; (void)fmt; abort(); }
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
const char * ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
"""


def llama_cpp_dir() -> Path:
    env = os.environ.get("LLAMA_CPP_DIR")
    if env:
        return Path(env)
    src = CACHE / "llama.cpp"
    if (src / "ggml" / "src" / "ggml-quants.c").exists():
        return src
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / SDIST
    shared = Path.home() / ".cache" / "edgelm" / "models" / "src" / SDIST  # the fetch script's copy
    if not archive.exists() and shared.exists():
        archive = shared
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
             "--no-cache-dir", "-d", str(CACHE), "llama-cpp-python==0.3.36"],
            check=True,
        )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"{archive}: sha256 {digest}, expected {SDIST_SHA256}")
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.startswith(SDIST_PREFIX + "ggml/"):
                member.name = member.name[len(SDIST_PREFIX):]
                tar.extract(member, src, filter="data")
    return src


def build_ggml_ref() -> ctypes.CDLL:
    src = llama_cpp_dir() / "ggml"
    CACHE.mkdir(parents=True, exist_ok=True)
    stub = CACHE / "stub.c"
    stub.write_text(STUB_C)
    lib = CACHE / "libggml_quant_ref.so"
    inc = [f"-I{src / 'src'}", f"-I{src / 'include'}", f"-I{src / 'src' / 'ggml-cpu'}"]
    subprocess.run(
        ["gcc", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-std=gnu11", "-DGGML_CPU_GENERIC", *inc,
         str(src / "src" / "ggml-quants.c"), str(src / "src" / "ggml-cpu" / "quants.c"), str(stub),
         "-lm", "-o", str(lib)],
        check=True,
    )
    return ctypes.CDLL(str(lib))


GGML = build_ggml_ref()
C_NAME = {
    T.Q4_0: "q4_0", T.Q4_1: "q4_1", T.Q5_0: "q5_0", T.Q5_1: "q5_1", T.Q8_0: "q8_0", T.Q8_1: "q8_1",
    T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K", T.Q8_K: "q8_K",
}
VEC_DOT_TYPE = {
    T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16,
    T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
    T.Q2_K: T.Q8_K, T.Q3_K: T.Q8_K, T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K, T.Q6_K: T.Q8_K,
}
GGUF_PY_QUANTIZES = {T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
GGUF_PY_DEQUANTIZES = {T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                       T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K}
# Byte offsets of the f16 scale fields inside one block; random bytes there must stay finite.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q8_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def sizes(t: T) -> tuple[int, int]:
    from gguf.constants import GGML_QUANT_SIZES
    if t == T.Q8_1:
        # gguf-py still lists the old 40-byte layout (f32 d and s); ggml's block_q8_1 has two f16s.
        return (32, 36)
    return GGML_QUANT_SIZES[t]


def c_f32(a: np.ndarray):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def ggml_quantize(t: T, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    bs, ts = sizes(t)
    out = np.zeros(x.size // bs * ts, dtype=np.uint8)
    fn = getattr(GGML, f"quantize_row_{C_NAME[t]}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out


def ggml_dequantize(t: T, q: np.ndarray) -> np.ndarray:
    q = np.ascontiguousarray(q, dtype=np.uint8)
    bs, ts = sizes(t)
    out = np.zeros(q.size // ts * bs, dtype=np.float32)
    fn = getattr(GGML, f"dequantize_row_{C_NAME[t]}")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(q.ctypes.data, out.ctypes.data, out.size)
    return out


def ggml_vec_dot(t: T, n: int, w: np.ndarray, act: np.ndarray) -> np.float32:
    act_name = C_NAME[VEC_DOT_TYPE[t]]
    # GGML_CPU_GENERIC exports the scalar *_generic code under the plain names
    fn = getattr(GGML, f"ggml_vec_dot_{C_NAME[t]}_{act_name}")
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                   ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    s = np.zeros(1, dtype=np.float32)
    w = np.ascontiguousarray(w)
    act = np.ascontiguousarray(act)
    fn(n, s.ctypes.data, 0, w.ctypes.data, 0, act.ctypes.data, 0, 1)
    return s[0]


def float_row_dot(t: T, w: np.ndarray, act: np.ndarray) -> np.float32:
    """ggml's scalar ggml_vec_dot_{f32,f16,bf16}: f32 products summed in double, in order."""
    a = quants.dequantize(w, t).astype(np.float32)
    b = quants.dequantize(act, t).astype(np.float32)
    total = 0.0
    for p in (a * b).astype(np.float32):
        total += float(p)
    return np.float32(total)


def quantize(t: T, x: np.ndarray) -> np.ndarray:
    if t == T.F32:
        return x.astype(np.float32).view(np.uint8)
    if t == T.F16:
        return x.astype(np.float16).view(np.uint8)
    if t in GGUF_PY_QUANTIZES:
        q = quants.quantize(x, t).reshape(-1)
        if t in C_NAME:
            assert np.array_equal(q, ggml_quantize(t, x)), f"gguf-py and ggml disagree on quantize {t.name}"
        return q
    return ggml_quantize(t, x)


def dequantize(t: T, q: np.ndarray) -> np.ndarray:
    if t in GGUF_PY_DEQUANTIZES:
        d = quants.dequantize(q, t).reshape(-1).astype(np.float32)
        if t in C_NAME:
            c = ggml_dequantize(t, q)
            assert np.array_equal(d.view(np.uint32), c.view(np.uint32)), f"gguf-py and ggml disagree on {t.name}"
        return d
    return ggml_dequantize(t, q)


def chunk_patterns(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pieces of 32 values, each shaped to reach a different branch of the quantizers."""
    patterns = [
        lambda i: 0.1 + 2.0 * np.cos(np.arange(32, dtype=np.float32) + np.float32(i)),  # ggml's test data
        lambda i: rng.normal(0.0, 1.0, 32),
        lambda i: np.zeros(32),                                   # all zero
        lambda i: np.full(32, 0.75),                              # constant, min > 0
        lambda i: np.where(np.arange(32) == 7, 20.0, rng.normal(0.0, 1.0, 32)),  # one outlier
        lambda i: rng.uniform(0.2, 1.0, 32),                      # all positive
        lambda i: rng.uniform(-1.0, -0.2, 32),                    # all negative
        lambda i: rng.normal(0.0, 1e-3, 32),                      # small
        lambda i: rng.normal(0.0, 50.0, 32),                      # large
        lambda i: np.linspace(-1.0, 1.0, 32),                     # ramp
        lambda i: np.where(rng.uniform(size=32) < 0.2, rng.normal(0.0, 1.0, 32), 0.0),  # sparse
        lambda i: rng.normal(0.0, 1e-6, 32),                      # tiny
        # exact halves after scaling (d = 1): round-half-away (Q8_0, Q8_1) vs ties-to-even (Q8_K)
        lambda i: np.concatenate([[127.0], np.arange(-15, 16) + 0.5]),
        lambda i: np.concatenate([[-127.0], np.arange(-15, 16) + 0.5]),
    ]
    chunks = [patterns[i % len(patterns)](i) for i in range(n // 32)]
    return np.concatenate(chunks).astype(np.float32)


def make_input(rng: np.random.Generator, t: T) -> np.ndarray:
    if sizes(t)[0] == QK_K:
        # three super-blocks: mixed patterns twice, then all zeros (the zero-block paths)
        x = chunk_patterns(rng, 3 * QK_K)
        x[2 * QK_K:] = 0.0
        return x
    return chunk_patterns(rng, 512)


def random_bytes(rng: np.random.Generator, t: T, n: int) -> np.ndarray:
    bs, ts = sizes(t)
    if t == T.F32:
        return rng.normal(0.0, 1.0, n).astype(np.float32).view(np.uint8)
    if t == T.F16:
        bits = rng.integers(0, 1 << 16, n, dtype=np.uint16)
        bits = np.where((bits & 0x7C00) == 0x7C00, bits ^ 0x4000, bits).astype(np.uint16)
        return bits.view(np.uint8)
    if t == T.BF16:
        # any sign and mantissa; exponents within 2^-40..2^40 so products stay finite, some subnormals
        sign = rng.integers(0, 2, n, dtype=np.uint16) << 15
        exp = rng.integers(127 - 40, 127 + 40, n, dtype=np.uint16)
        exp[::17] = 0
        bits = (sign | (exp << 7) | rng.integers(0, 128, n, dtype=np.uint16)).astype(np.uint16)
        return bits.view(np.uint8)
    raw = rng.integers(0, 256, (n // bs, ts), dtype=np.uint8)
    for off in F16_FIELDS[t]:
        f16 = rng.normal(0.0, 0.05, n // bs).astype(np.float16)
        raw[:, off:off + 2] = f16.view(np.uint8).reshape(-1, 2)
    return raw.reshape(-1)


def write(path: Path, records: list[tuple[str, np.ndarray]]) -> None:
    buf = bytearray(b"EQG1")
    for name, arr in records:
        if arr.dtype == np.float32:
            kind = 0
        elif arr.dtype == np.uint8:
            kind = 1
        else:
            raise TypeError(f"{name}: {arr.dtype}")
        buf += struct.pack("<B", len(name)) + name.encode() + struct.pack("<BI", kind, arr.size)
        buf += np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    path.write_bytes(bytes(buf))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261127)
    weight_types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                    T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    for t in weight_types:
        x = make_input(rng, t)
        n = x.size
        q = quantize(t, x)
        rb = random_bytes(rng, t, n)
        act = rng.normal(0.0, 1.0, n).astype(np.float32)
        act[64:96] = 0.0  # one all-zero activation block
        at = VEC_DOT_TYPE[t]
        aq = quantize(at, act)
        if t in C_NAME:
            dot = ggml_vec_dot(t, n, q, aq)
            rdot = ggml_vec_dot(t, n, rb, aq)
        else:
            dot = float_row_dot(t, q, aq)
            rdot = float_row_dot(t, rb, aq)
        records = [
            ("input", x), ("quant", q), ("dequant", dequantize(t, q)),
            ("rand_bytes", rb), ("rand_dequant", dequantize(t, rb)),
            ("act_input", act), ("act_quant", aq),
            ("dot", np.array([dot], dtype=np.float32)), ("rand_dot", np.array([rdot], dtype=np.float32)),
        ]
        write(OUT / f"{t.name.lower()}.bin", records)
        print(f"{t.name:5} n={n:4} dot={dot:+.6f} rand_dot={rdot:+.6e}")
    # activation-only types: quantize (and for Q8_K, dequantize) against ggml's reference
    for t in [T.Q8_1, T.Q8_K]:
        x = make_input(rng, t)
        q = quantize(t, x)
        records = [("input", x), ("quant", q)]
        if t == T.Q8_K:
            records.append(("dequant", ggml_dequantize(t, q)))
        write(OUT / f"{t.name.lower()}.bin", records)
        print(f"{t.name:5} n={x.size:4}")


if __name__ == "__main__":
    main()
