//! `edgelm`: run, chat with, tokenize, inspect and score small language models from GGUF files.

mod cmd;
mod load;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Subcommand};

/// Small language models on edge hardware.
#[derive(clap::Parser)]
#[command(name = "edgelm", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt, streamed to stdout.
    Run(cmd::run::Args),
    /// Interactive multi-turn chat using the file's chat template.
    Chat(cmd::chat::Args),
    /// Show the token ids and pieces of a text.
    Tokenize(cmd::tokenize::Args),
    /// Show architecture, hyper-parameters, tokenizer, tensors and the memory plan of a file.
    Inspect(cmd::inspect::Args),
    /// Perplexity over a text file, as llama.cpp's llama-perplexity computes it.
    Perplexity(cmd::perplexity::Args),
    /// Convert a Hugging Face checkpoint (optionally merging a LoRA adapter) to a quantized GGUF.
    Convert(cmd::convert::Args),
    /// Convert a PEFT LoRA adapter to a GGUF adapter for `run --lora`.
    #[command(name = "convert-lora")]
    ConvertLora(cmd::convert::LoraArgs),
    /// Rewrite a GGUF file's tensors in another layout (rows interleaved for a target's kernels).
    Repack(cmd::repack::Args),
    /// Prompt and generation speed (llama-bench's pp/tg tests), bytes per token, memory bandwidth.
    Bench(cmd::bench::Args),
    /// Check every tensor against the checksums recorded by `edgelm convert`.
    Verify(cmd::verify::Args),
    /// Whether a model fits a board (boards/profiles), its predicted decode speed, and what to change.
    Plan(cmd::plan::Args),
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `--lora-scale` pairs with the `--lora` before it, which only the matches' indices tell.
    let sub = matches.subcommand().map(|(_, m)| m);
    let lora = |l: &mut load::LoraArgs| match sub {
        Some(m) => l.resolve(m),
        None => Ok(()),
    };
    // A debugging knob: EDGELM_ISA=scalar (or avx2, neon, ...) runs every kernel at that level,
    // so a whole model's output can be compared across levels on one machine.
    if let Some(want) = std::env::var_os("EDGELM_ISA") {
        let want = want.to_string_lossy();
        let ok = edgelm::quant::Isa::ALL
            .iter()
            .find(|i| i.name() == want)
            .is_some_and(|&i| edgelm::quant::set_isa(i));
        if !ok {
            eprintln!("error: EDGELM_ISA={want}: not a kernel level this CPU has");
            std::process::exit(2);
        }
    }
    let r: Result<()> = match cli.cmd {
        Command::Run(mut a) => lora(&mut a.lora).and_then(|_| cmd::run::main(a)),
        Command::Chat(mut a) => lora(&mut a.lora).and_then(|_| cmd::chat::main(a)),
        Command::Tokenize(a) => cmd::tokenize::main(a),
        Command::Inspect(a) => cmd::inspect::main(a),
        Command::Perplexity(a) => cmd::perplexity::main(a),
        Command::Convert(a) => cmd::convert::main(a),
        Command::ConvertLora(a) => cmd::convert::main_lora(a),
        Command::Repack(a) => cmd::repack::main(a),
        Command::Bench(a) => cmd::bench::main(a),
        Command::Verify(a) => cmd::verify::main(a).map(|code| {
            if code != 0 {
                std::process::exit(code)
            }
        }),
        Command::Plan(a) => cmd::plan::main(a),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
