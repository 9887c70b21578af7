//! `edgelm_model_verify` through the C ABI (called from Rust): a converted model verifies, the
//! same bytes with one flipped bit fail with `EDGELM_ERR_CHECKSUM` naming the tensor.

use edgelm_c::*;
use std::ffi::CStr;

fn verify(bytes: &[u8]) -> (edgelm_status, bool, String) {
    let mut m = std::ptr::null_mut();
    // SAFETY: `bytes` outlives the model, freed below; out pointers are locals.
    unsafe {
        assert_eq!(
            edgelm_model_load(bytes.as_ptr(), bytes.len(), &mut m),
            edgelm_status::EDGELM_OK
        );
        let mut checked = false;
        let st = edgelm_model_verify(m, &mut checked);
        let msg = CStr::from_ptr(edgelm_last_error())
            .to_string_lossy()
            .into_owned();
        edgelm_model_free(m);
        (st, checked, msg)
    }
}

#[test]
fn flipped_bit_fails_verification_through_the_c_api() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c111.gguf");
    let o = edgelm_converter::ConvertOptions {
        input: edgelm_suite::model_file("hf/cerebras-111m-2l"),
        output: out.clone(),
        quant: edgelm_converter::Quant::parse("q8_0").unwrap(),
        lora: None,
        lora_scale: 1.0,
        force: false,
        layout: edgelm::quant::layout::Target::None,
    };
    edgelm_converter::convert(&o, &|_, _, _| {}).unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    let (st, checked, _) = verify(&bytes);
    assert_eq!((st, checked), (edgelm_status::EDGELM_OK, true));

    let at = {
        let g = edgelm::gguf::Gguf::parse(&bytes).unwrap();
        let t = g.tensor("blk.0.attn_qkv.weight").unwrap();
        g.data_offset() + t.offset as usize + 100
    };
    bytes[at] ^= 1;
    let (st, _, msg) = verify(&bytes);
    assert_eq!(st, edgelm_status::EDGELM_ERR_CHECKSUM);
    assert!(
        msg.starts_with("tensor 'blk.0.attn_qkv.weight': checksum mismatch (file says "),
        "{msg}"
    );
}
