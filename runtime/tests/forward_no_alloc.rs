//! The model forward with nothing but caller-provided memory: the layer table is a stack array and
//! the KV cache + scratch one byte buffer sized by the plan. This file also runs under
//! `--no-default-features` (core without std or alloc), which is the point.

use edgelm::gguf::Gguf;
use edgelm::kv::KvType;
use edgelm::model::{LayerWeights, Model};
use edgelm::plan::{plan, plan_with};
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
    let mut small = vec![0u8; p.total_bytes - 1];
    assert!(Session::new(&model, &mut small, 128).is_err());
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
    assert!(Session::with_kv(&model, &mut small, 128, KvType::F32).is_err());
    let mut big = vec![0u8; p32.total_bytes + 63];
    for off in [0, 1, 7, 63] {
        let mem = &mut big[off..off + p32.total_bytes];
        assert!(
            Session::with_kv(&model, mem, 128, KvType::F32).is_ok(),
            "offset {off}"
        );
    }
    let mut wrong = [LayerWeights::EMPTY; 3];
    assert!(Model::load_into(&g, &mut wrong[..]).is_err());
}
