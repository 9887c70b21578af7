//! Load a GGUF model, plan its memory, and stream a greedy continuation.
//!
//! `cargo run --release --example generate -- MODEL.gguf "The capital of France is"`

use edgelm::gguf::Gguf;
use edgelm::model::ModelVec;
use edgelm::plan::plan;
use edgelm::sampler::SamplerParams;
use edgelm::session::{alloc_memory, GenOptions, Generator, Session};
use edgelm::tokenizer::Tokenizer;
use std::error::Error;

/// Generates up to `n` tokens after `prompt` and returns the text.
fn generate(model_path: &str, prompt: &str, n: usize) -> Result<String, Box<dyn Error>> {
    let bytes = std::fs::read(model_path)?; // an mmap works the same way (see boards/linux)
    let g = Gguf::parse(&bytes)?; // validates the whole header, allocates nothing
    let model = ModelVec::load(&g)?; // weights are borrowed from `bytes`
    let tok = Tokenizer::from_gguf(&g)?;
    let p = plan(&model.config, 256)?; // exact memory, known before running
    let mut mem = alloc_memory(&p);
    let mut session = Session::new(&model, &mut mem, 256)?;
    let opts = GenOptions {
        max_tokens: Some(n),
        ..Default::default()
    };
    let mut gen = Generator::new(&mut session, &tok, SamplerParams::greedy(), opts);
    gen.prompt(&tok.encode(prompt, true, true))?;
    let mut text = String::new();
    while let Some(step) = gen.next_token()? {
        print!("{}", step.text);
        text.push_str(&step.text);
    }
    println!();
    Ok(text)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).ok_or("usage: generate MODEL.gguf [PROMPT]")?;
    let prompt = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("The capital of France is");
    generate(model, prompt, 32)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs_on_the_default_model() {
        let path = edgelm_suite::smollm2();
        let text = super::generate(path.to_str().unwrap(), "The capital of France is", 3).unwrap();
        assert!(text.starts_with(" Paris"), "{text:?}");
    }
}
