//! `edgelm tokenize -m FILE TEXT [--json]`.

use crate::load::ModelFile;
use anyhow::{Context, Result};
use edgelm::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `edgelm tokenize`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF file (only its tokenizer is read).
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// Text to tokenize.
    text: String,
    /// Do not add BOS/EOS even where the file asks for them.
    #[arg(long)]
    no_special: bool,
    /// Treat special-token text (e.g. `<|im_start|>`) as plain text.
    #[arg(long)]
    no_parse_special: bool,
    /// Print `{"ids":[...],"pieces":[...]}`.
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> Result<()> {
    let file = ModelFile::open(&a.model)?;
    let g = file.gguf()?;
    let tok = Tokenizer::from_gguf(&g)
        .with_context(|| format!("cannot read the tokenizer of {}", a.model.display()))?;
    let ids = tok.encode(&a.text, !a.no_special, !a.no_parse_special);
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| String::from_utf8_lossy(tok.token_bytes(id, true)).into_owned())
        .collect();
    if a.json {
        println!("{}", json!({"ids": ids, "pieces": pieces}));
    } else {
        for (id, p) in ids.iter().zip(&pieces) {
            println!("{id:6} -> {p:?}");
        }
    }
    Ok(())
}
