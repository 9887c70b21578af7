//! Interleaved layouts on the real SmolLM2 model: `edgelm repack` / `convert --layout` files give
//! the plain file's logits bit for bit, carry checksums of their new bytes, and `--layout none`
//! gives every tensor's original bytes back.

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::quant::layout::Target;
use edgelm_converter::{convert, repack, ConvertOptions, Quant, RepackOptions};
use edgelm_suite::{greedy, model_file, read, reference_text, smollm2, teacher_forced_logits};
use std::path::{Path, PathBuf};

fn repack_to(input: &Path, dir: &Path, target: Target) -> PathBuf {
    let out = dir.join(format!("{}.gguf", target.name()));
    let r = repack(&RepackOptions {
        input: input.into(),
        output: out.clone(),
        target,
        force: true,
    })
    .unwrap_or_else(|e| panic!("repack {}: {e}", target.name()));
    assert_eq!(r.tensors, 272);
    out
}

/// Every tensor's checksum is the xxh3 of its bytes as written.
fn check_checksums(g: &Gguf<'_>) {
    let sums = g
        .get("edgelm.checksum.tensors")
        .unwrap()
        .as_array()
        .unwrap();
    for (t, s) in g.tensors().zip(sums.iter()) {
        assert_eq!(
            s.as_u64().unwrap(),
            xxhash_rust::xxh3::xxh3_64(t.data),
            "{}",
            t.name
        );
    }
}

/// Same names, types and bytes, tensor by tensor.
fn same_tensors(a: &Gguf<'_>, b: &Gguf<'_>) {
    let (ta, tb): (Vec<_>, Vec<_>) = (a.tensors().collect(), b.tensors().collect());
    assert_eq!(ta.len(), tb.len());
    for (x, y) in ta.iter().zip(&tb) {
        assert_eq!((x.name, x.ty, x.shape()), (y.name, y.ty, y.shape()));
        assert!(x.data == y.data, "{} bytes differ", x.name);
    }
}

/// Teacher-forced logits over the start of the reference text, and 16 greedy tokens.
fn outputs(g: &Gguf<'_>) -> (Vec<Vec<f32>>, Vec<u32>) {
    let model = ModelVec::load(g).unwrap();
    let tok = edgelm::tokenizer::Tokenizer::from_gguf(g).unwrap();
    let mut tokens = tok.encode(&reference_text(), true, false);
    tokens.truncate(48);
    let logits = teacher_forced_logits(&model, &tokens, edgelm::kv::KvType::F16);
    let prompt = tok.encode("The capital of France is", true, true);
    (logits, greedy(&model, &prompt, 16))
}

fn bits(l: &[Vec<f32>]) -> Vec<u32> {
    l.iter().flatten().map(|x| x.to_bits()).collect()
}

#[test]
fn repacked_smollm2_q4_1_gives_the_plain_logits_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let plain_bytes = read(&smollm2());
    let plain = Gguf::parse(&plain_bytes).unwrap();
    let (want_logits, want_tokens) = outputs(&plain);
    for target in [Target::X86Avx2, Target::ArmDotprod] {
        let bytes = read(&repack_to(&smollm2(), dir.path(), target));
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.get_str("edgelm.layout"), Some(target.name()));
        let interleaved = g
            .tensors()
            .filter(|t| t.ty == edgelm::quant::GgmlType::Q4_1_X4)
            .count();
        assert_eq!(
            interleaved, 210,
            "every Q4_1 matrix; the Q8_0 embedding stays plain"
        );
        check_checksums(&g);
        let (logits, tokens) = outputs(&g);
        assert_eq!(tokens, want_tokens, "{target}");
        assert!(
            bits(&logits) == bits(&want_logits),
            "{target}: logits differ"
        );
    }
    let x4 = repack_to(&smollm2(), dir.path(), Target::X86Avx512);
    let back_bytes = read(&repack_to(&x4, dir.path(), Target::None));
    let back = Gguf::parse(&back_bytes).unwrap();
    same_tensors(&plain, &back);
    check_checksums(&back);
    assert!(back.get("edgelm.layout").is_none());
    assert!(back.get("edgelm.layout.type_ids").is_none());
}

fn convert_to(dir: &Path, quant: &str, layout: Target) -> PathBuf {
    let out = dir.join(format!("{quant}-{}.gguf", layout.name()));
    let o = ConvertOptions {
        input: model_file("hf/smollm2-135m"),
        output: out.clone(),
        quant: Quant::parse(quant).unwrap(),
        lora: None,
        lora_scale: 1.0,
        layout,
        force: true,
    };
    convert(&o, &|_, _, _| {}).unwrap_or_else(|e| panic!("convert {quant}: {e}"));
    out
}

#[test]
fn convert_with_a_layout_equals_convert_then_repack_for_q8_0_and_q4_0() {
    let dir = tempfile::tempdir().unwrap();
    for quant in ["q8_0", "q4_0"] {
        let plain_bytes = read(&convert_to(dir.path(), quant, Target::None));
        let plain = Gguf::parse(&plain_bytes).unwrap();
        let laid = convert_to(dir.path(), quant, Target::X86Avx2);
        let laid_bytes = read(&laid);
        let g = Gguf::parse(&laid_bytes).unwrap();
        check_checksums(&g);
        let repacked_bytes = read(&repack_to(
            &dir.path().join(format!("{quant}-none.gguf")),
            dir.path(),
            Target::X86Avx2,
        ));
        same_tensors(&g, &Gguf::parse(&repacked_bytes).unwrap());
        let (want_logits, want_tokens) = outputs(&plain);
        let (logits, tokens) = outputs(&g);
        assert_eq!(tokens, want_tokens, "{quant}");
        assert!(
            bits(&logits) == bits(&want_logits),
            "{quant}: logits differ"
        );
        let back_bytes = read(&repack_to(&laid, dir.path(), Target::None));
        same_tensors(&plain, &Gguf::parse(&back_bytes).unwrap());
    }
}
