//! `edgelm chat`: interactive multi-turn chat with the chat template stored in the file.
//! Each turn the whole conversation is rendered again; the KV cache keeps the longest prefix that
//! did not change, so only the new turn is evaluated.

use crate::cmd::run::SamplingArgs;
use crate::load::{AdapterFiles, LoraArgs, ModelFile};
use anyhow::{bail, Context, Result};
use edgelm::kv::KvType;
use edgelm::model::ModelVec;
use edgelm::session::{GenOptions, Generator, Session};
use edgelm::tokenizer::Tokenizer;
use edgelm_cli::template::ChatTemplate;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// Arguments of `edgelm chat`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file with a chat template.
    #[arg(short = 'm', long)]
    model: PathBuf,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Threads for the matrix-vector products (default 1: measured fastest here for now).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Context size (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Prompt tokens evaluated per batch (weights × a matrix of tokens; 1 = one at a time).
    #[arg(short = 'b', long = "batch-size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// KV cache element type: f16 (llama.cpp's default), f32 (attention in f32, closest to
    /// exact arithmetic; twice the cache memory) or q8_0 (0.53x the memory of f16).
    #[arg(long = "kv-type", default_value = "f16", value_parser = crate::load::parse_kv_type)]
    kv_type: KvType,
    /// Most tokens per reply (-1 = until end of turn).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    n_predict: i64,
    /// Check every tensor against the file's checksums before running; refuse a mismatch.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
}

/// Gemma's chat format (its Hugging Face template, system message folded into the first user turn).
const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + (message['content'] | trim) + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

pub fn main(a: Args) -> Result<()> {
    crate::load::set_threads(a.threads);
    let file = ModelFile::open(&a.model)?;
    let g = file.gguf()?;
    let adapters = AdapterFiles::open(&a.lora)?;
    if a.verify {
        crate::cmd::verify::before_running(&file, &g, false)?;
        adapters.verify(false)?;
    }
    let mut table = Vec::new();
    let mut model =
        ModelVec::load(&g).with_context(|| format!("cannot load {}", a.model.display()))?;
    crate::load::report_adapters(&adapters.apply(&mut model, &a.model, &mut table)?);
    let tok = Tokenizer::from_gguf(&g).context("cannot read the tokenizer")?;
    // Gemma 3 files made by llama.cpp's converter may carry no template; Gemma's turn format is fixed.
    let fallback = (model.config.arch == edgelm::model::Arch::Gemma3).then_some(GEMMA_TEMPLATE);
    let Some(src) = g.get_str("tokenizer.chat_template").or(fallback) else {
        bail!(
            "{} has no chat template (tokenizer.chat_template); use `edgelm run`",
            a.model.display()
        );
    };
    let piece = |id: Option<u32>| {
        id.map(|i| String::from_utf8_lossy(tok.token_bytes(i, true)).into_owned())
            .unwrap_or_default()
    };
    let template = ChatTemplate::new(src, piece(tok.bos()), piece(tok.eos()))?;
    file.release_header(&g);
    let n_ctx = a.ctx.unwrap_or(model.config.n_ctx_train.min(4096));
    let plan = edgelm::plan::plan_batch(&model.config, n_ctx, a.kv_type, a.batch_size as usize)?;
    let mut mem = crate::load::session_memory(&plan, "-c")?;
    let mut session =
        Session::with_batch(&model, &mut mem, n_ctx, a.kv_type, a.batch_size as usize)?;
    let params = a.sampling.params();

    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    let mut cached: Vec<u32> = Vec::new();
    let interactive = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("\n> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("stdin is not UTF-8 text")?;
        if line.trim().is_empty() {
            continue;
        }
        messages.push(json!({"role": "user", "content": line}));
        let prompt = template.render(&messages)?;
        let add_special = tok
            .bos()
            .is_none_or(|_| !prompt.starts_with(&piece(tok.bos())));
        let ids = tok.encode(&prompt, add_special, true);
        // Reuse the cached prefix; always evaluate at least one token to get fresh logits.
        let common = cached
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        // A sliding-window cache may keep less than the shared prefix.
        let common = session.truncate(common);
        if ids.len() >= n_ctx {
            bail!(
                "the conversation ({} tokens) no longer fits the context ({n_ctx}); raise -c",
                ids.len()
            );
        }
        let opts = GenOptions {
            max_tokens: usize::try_from(a.n_predict).ok(),
            stop: Vec::new(),
            logprobs: 0,
        };
        let mut gen = Generator::new(&mut session, &tok, params, opts);
        gen.prompt(&ids[common..])?;
        let mut reply = String::new();
        let mut generated = Vec::new();
        let mut out = std::io::stdout().lock();
        while let Some(step) = gen.next_token()? {
            generated.extend(step.id);
            reply.push_str(&step.text);
            out.write_all(step.text.as_bytes())?;
            out.flush()?;
        }
        writeln!(out)?;
        cached = ids;
        cached.extend(generated);
        cached.truncate(session.pos());
        messages.push(json!({"role": "assistant", "content": reply}));
    }
    Ok(())
}
