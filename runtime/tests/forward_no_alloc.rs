//! The model forward with nothing but caller-provided memory: the layer table is a stack array and
//! the KV cache + scratch one byte buffer sized by the plan. This file also runs under
//! `--no-default-features` (core without std or alloc), which is the point.

use edgelm::gguf::Gguf;
use edgelm::kv::KvType;
use edgelm::model::{LayerWeights, Model};
use edgelm::plan::{plan, plan_batch, plan_with};
use edgelm::sampler::{Sampler, SamplerParams};
use edgelm::session::Session;

fn smollm2_bytes() -> Vec<u8> {
    let dir = std::env::var_os("EDGELM_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(&std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/edgelm/models")
        });
    let p = dir.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-models first", p.display()))
}

#[test]
fn greedy_paris_with_caller_memory_only() {
    let bytes = smollm2_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let mut layers = [LayerWeights::EMPTY; 30];
    let model = Model::load_into(&g, &mut layers[..]).unwrap();
    let p = plan(&model.config, 64).unwrap();
    let mut mem = vec![0u8; p.total_bytes];
    let mut s = Session::new(&model, &mut mem, 64).unwrap();
    // "The capital of France is" as llama.cpp tokenizes it (tests/reference/smollm2-q4_1/greedy.json).
    s.eval_all(&[504, 3575, 282, 4649, 314]).unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut out = [0u32; 4];
    for o in out.iter_mut() {
        *o = s.sample(&mut sampler);
        s.eval(*o).unwrap();
    }
    // " Paris", ".", "\n", "\n" — llama.cpp's greedy continuation.
    assert_eq!(out, [7042, 30, 198, 198]);

    // The f32 cache in caller memory too; llama.cpp with `-ctk f32 -ctv f32 -fa off` continues
    // the same way (greedy.json, `generated_f32kv_nofa`).
    let p = plan_with(&model.config, 64, KvType::F32).unwrap();
    let mut mem = vec![0u8; p.total_bytes];
    let mut s = Session::with_kv(&model, &mut mem, 64, KvType::F32).unwrap();
    assert_eq!(s.kv_type(), KvType::F32);
    s.eval_all(&[504, 3575, 282, 4649, 314]).unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut out = [0u32; 4];
    for o in out.iter_mut() {
        *o = s.sample(&mut sampler);
        s.eval(*o).unwrap();
    }
    assert_eq!(out, [7042, 30, 198, 198]);

    // Batched prefill in caller memory: the plan sizes the batch buffers; batches of 2 cover a
    // prompt of 5 with a short last one.
    let p = plan_batch(&model.config, 64, KvType::F16, 2).unwrap();
    assert_eq!(p.n_batch, 2);
    assert!(p.scratch_bytes > plan(&model.config, 64).unwrap().scratch_bytes);
    let mut mem = vec![0u8; p.total_bytes];
    let mut s = Session::with_batch(&model, &mut mem, 64, KvType::F16, 2).unwrap();
    s.eval_all(&[504, 3575, 282, 4649, 314]).unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut out = [0u32; 4];
    for o in out.iter_mut() {
        *o = s.sample(&mut sampler);
        s.eval(*o).unwrap();
    }
    assert_eq!(out, [7042, 30, 198, 198]);
}

#[test]
fn plan_is_exact_and_too_small_memory_is_an_error() {
    let bytes = smollm2_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let mut layers = [LayerWeights::EMPTY; 30];
    let model = Model::load_into(&g, &mut layers[..]).unwrap();
    let p = plan(&model.config, 128).unwrap();
    // 30 layers × 128 positions × 192 (3 KV heads × 64) × f16, for K and V.
    assert_eq!(p.kv_bytes, 2 * 30 * 128 * 192 * 2);
    let too_small = |got: usize, needed: usize| {
        format!("session memory too small: {got} bytes given, {needed} needed")
    };
    let mut small = vec![0u8; p.total_bytes - 1];
    let e = Session::new(&model, &mut small, 128).err().unwrap();
    assert_eq!(e.to_string(), too_small(p.total_bytes - 1, p.total_bytes));
    // Any buffer address works with exactly total_bytes.
    let mut big = vec![0u8; p.total_bytes + 63];
    for off in [0, 1, 7, 63] {
        let mem = &mut big[off..off + p.total_bytes];
        assert!(Session::new(&model, mem, 128).is_ok(), "offset {off}");
    }
    // The f32 cache doubles the KV bytes and nothing else.
    let p32 = plan_with(&model.config, 128, KvType::F32).unwrap();
    assert_eq!(p32.kv_bytes, 2 * 30 * 128 * 192 * 4);
    assert_eq!(p32.total_bytes - p.total_bytes, p.kv_bytes);
    let mut small = vec![0u8; p32.total_bytes - 1];
    let e = Session::with_kv(&model, &mut small, 128, KvType::F32)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        too_small(p32.total_bytes - 1, p32.total_bytes)
    );
    let mut big = vec![0u8; p32.total_bytes + 63];
    for off in [0, 1, 7, 63] {
        let mem = &mut big[off..off + p32.total_bytes];
        assert!(
            Session::with_kv(&model, mem, 128, KvType::F32).is_ok(),
            "offset {off}"
        );
    }
    let mut wrong = [LayerWeights::EMPTY; 3];
    let e = Model::load_into(&g, &mut wrong[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "layer table holds 3 entries, the model has 30 layers"
    );
}

/// A minimal GGUF v3 LoRA adapter for `blk.0.attn_q.weight` (576 × 576) at rank 4, F32 factors,
/// written by hand: this file also builds without the crate's writer (no std).
fn tiny_adapter() -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&2u64.to_le_bytes()); // tensors
    out.extend_from_slice(&4u64.to_le_bytes()); // metadata keys
    for (k, v) in [
        ("general.architecture", "llama"),
        ("general.type", "adapter"),
        ("adapter.type", "lora"),
    ] {
        s(&mut out, k);
        out.extend_from_slice(&8u32.to_le_bytes()); // string
        s(&mut out, v);
    }
    s(&mut out, "adapter.lora.alpha");
    out.extend_from_slice(&6u32.to_le_bytes()); // f32
    out.extend_from_slice(&8f32.to_le_bytes());
    let (n, r) = (576u64, 4u64);
    let a_bytes = n * r * 4;
    for (name, dims, offset) in [
        ("blk.0.attn_q.weight.lora_a", [n, r], 0),
        ("blk.0.attn_q.weight.lora_b", [r, n], a_bytes),
    ] {
        s(&mut out, name);
        out.extend_from_slice(&2u32.to_le_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&offset.to_le_bytes());
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    for i in 0..2 * n * r {
        // Small deterministic values of both signs.
        let v = ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[test]
fn lora_adapter_with_caller_memory_only() {
    use edgelm::model::{Adapter, LoraDelta};
    let bytes = smollm2_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let ab = tiny_adapter();
    let ag = Gguf::parse(&ab).unwrap();
    let adapter = Adapter::parse(&ag).unwrap();
    assert_eq!(
        (adapter.n_pairs, adapter.max_rank, adapter.alpha),
        (1, 4, 8.0)
    );
    let prompt = [504, 3575, 282, 4649, 314];
    let mut base_layers = [LayerWeights::EMPTY; 30];
    let base = Model::load_into(&g, &mut base_layers[..]).unwrap();
    let p = plan(&base.config, 16).unwrap();
    let mut mem = vec![0u8; p.total_bytes];
    let want = Session::new(&base, &mut mem, 16)
        .unwrap()
        .eval_all(&prompt)
        .unwrap()
        .to_vec();
    for (scale, same) in [(0.0, true), (1.0, false)] {
        let mut layers = [LayerWeights::EMPTY; 30];
        let mut table = [LoraDelta::EMPTY; 2];
        let mut model = Model::load_into(&g, &mut layers[..]).unwrap();
        let rest = model.apply_adapter(&adapter, scale, &mut table).unwrap();
        assert_eq!(rest.len(), 1);
        let d = model.layers()[0].wq.lora.unwrap();
        assert_eq!(d.scale, scale * 8.0 / 4.0);
        let got = Session::new(&model, &mut mem, 16)
            .unwrap()
            .eval_all(&prompt)
            .unwrap()
            .to_vec();
        assert_eq!(got == want, same, "scale {scale}");
    }
}
