//! Greedy generation with the runtime built the way a microcontroller builds it: without `std`
//! the kernels are the portable scalar ones (no run-time SIMD detection) and exp/sin/cos come from
//! the `libm` crate. On the host this gives the numbers the Cortex-M firmware computes, which
//! scripts/test-firmware compares it with.
//!
//! `cargo run -p edgelm --no-default-features --features alloc --example scalar_greedy -- MODEL.gguf N_CTX N PROMPT`
//! prints `prompt_tokens: ..`, `tokens: ..` and `text_hex: ..` (the UTF-8 text as hex).

use edgelm::gguf::Gguf;
use edgelm::model::{Config, LayerWeights, Model};
use edgelm::plan::plan;
use edgelm::sampler::SamplerParams;
use edgelm::session::{GenOptions, Generator, Session};
use edgelm::tokenizer::Tokenizer;
use std::process::exit;

fn fail(msg: String) -> ! {
    eprintln!("scalar_greedy: {msg}");
    exit(1)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        fail("usage: scalar_greedy MODEL.gguf N_CTX N PROMPT".into());
    }
    let num = |s: &str| -> usize { s.parse().unwrap_or_else(|e| fail(format!("{s}: {e}"))) };
    let (n_ctx, n) = (num(&a[2]), num(&a[3]));
    let bytes = std::fs::read(&a[1]).unwrap_or_else(|e| fail(format!("{}: {e}", a[1])));
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| fail(format!("{}: {e}", a[1])));
    let n_layer = Config::from_gguf(&g)
        .unwrap_or_else(|e| fail(format!("{}: {e}", a[1])))
        .n_layer;
    let mut layers = vec![LayerWeights::EMPTY; n_layer];
    let model =
        Model::load_into(&g, &mut layers[..]).unwrap_or_else(|e| fail(format!("{}: {e}", a[1])));
    let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| fail(format!("tokenizer: {e}")));
    let p = plan(&model.config, n_ctx).unwrap_or_else(|e| fail(format!("plan: {e}")));
    let mut mem = vec![0u8; p.total_bytes];
    let mut s = Session::new(&model, &mut mem, n_ctx).unwrap_or_else(|e| fail(format!("{e}")));
    let prompt = tok.encode(&a[4], true, true);
    let opts = GenOptions {
        max_tokens: Some(n),
        ..GenOptions::default()
    };
    let mut gen = Generator::new(&mut s, &tok, SamplerParams::greedy(), opts);
    gen.prompt(&prompt).unwrap_or_else(|e| fail(format!("{e}")));
    let (mut ids, mut text) = (Vec::new(), Vec::new());
    while let Some(step) = gen.next_token().unwrap_or_else(|e| fail(format!("{e}"))) {
        ids.extend(step.id);
        text.extend_from_slice(step.text.as_bytes());
    }
    let join = |v: &[u32]| v.iter().map(|i| format!(" {i}")).collect::<String>();
    println!("prompt_tokens:{}", join(&prompt));
    println!("tokens:{}", join(&ids));
    println!(
        "text_hex: {}",
        text.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
}
