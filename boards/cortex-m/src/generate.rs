//! The board-independent part: a GGUF image in memory-mapped flash, a plan-sized buffer, a text
//! sink. Tokenize the prompt, run the forward pass, sample greedily, stream the text.

use core::fmt;
use edgelm::gguf::{Gguf, GgufError};
use edgelm::model::{LayerWeights, Model, ModelError};
use edgelm::plan::{plan, Plan, PlanError};
use edgelm::sampler::SamplerParams;
use edgelm::session::{GenOptions, Generator, Session, SessionError, StopReason};
use edgelm::tokenizer::{Tokenizer, TokenizerError};

/// What can go wrong before or during generation; each names the stage.
#[derive(Debug)]
pub enum FwError {
    /// The image is not a valid GGUF.
    Gguf(GgufError),
    /// The model's tensors or hyper-parameters are unusable.
    Model(ModelError),
    /// The tokenizer metadata is unusable.
    Tokenizer(TokenizerError),
    /// The runtime cannot plan this context.
    Plan(PlanError),
    /// The plan on the target differs from the one the build computed on the host.
    PlanMismatch {
        /// Bytes the static buffer was sized for (host plan).
        built: usize,
        /// Bytes the runtime plans here.
        planned: usize,
    },
    /// Evaluating a token failed.
    Session(SessionError),
    /// The text sink failed.
    Write,
}

impl fmt::Display for FwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwError::Gguf(e) => write!(f, "model image: {e}"),
            FwError::Model(e) => write!(f, "model: {e}"),
            FwError::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            FwError::Plan(e) => write!(f, "plan: {e}"),
            FwError::PlanMismatch { built, planned } => write!(
                f,
                "the static buffer holds {built} bytes but the runtime plans {planned}: rebuild"
            ),
            FwError::Session(e) => write!(f, "forward pass: {e}"),
            FwError::Write => write!(f, "console write failed"),
        }
    }
}

/// What a run did, for the log.
#[derive(Debug)]
pub struct Report {
    /// The runtime's plan on the target.
    pub plan: Plan,
    /// Generated tokens (the first `n_gen` entries of the caller's array).
    pub n_gen: usize,
    /// Why generation ended.
    pub stop: Option<StopReason>,
}

/// Runs `prompt` through the model in `image` with `N` layers and at most `max_tokens` new
/// tokens, KV cache and scratch in `mem` (which must be the runtime's plan for `n_ctx`), writing
/// the text to `out` as it is generated. `on_prompt` sees the prompt's ids, `ids` receives the
/// generated ones.
#[allow(clippy::too_many_arguments)]
pub fn run<const N: usize, W: embedded_io::Write>(
    image: &[u8],
    mem: &mut [u8],
    n_ctx: usize,
    prompt: &str,
    max_tokens: usize,
    out: &mut W,
    on_prompt: impl FnOnce(&[u32]),
    ids: &mut [u32],
) -> Result<Report, FwError> {
    let g = Gguf::parse(image).map_err(FwError::Gguf)?;
    let mut layers = [LayerWeights::EMPTY; N];
    let model = Model::load_into(&g, &mut layers[..]).map_err(FwError::Model)?;
    let p = plan(&model.config, n_ctx).map_err(FwError::Plan)?;
    if p.total_bytes != mem.len() {
        return Err(FwError::PlanMismatch {
            built: mem.len(),
            planned: p.total_bytes,
        });
    }
    let tok = Tokenizer::from_gguf(&g).map_err(FwError::Tokenizer)?;
    let prompt_ids = tok.encode(prompt, true, true);
    on_prompt(&prompt_ids);

    let mut s = Session::new(&model, mem, n_ctx).map_err(FwError::Session)?;
    let opts = GenOptions {
        max_tokens: Some(max_tokens.min(ids.len())),
        ..GenOptions::default()
    };
    let mut gen = Generator::new(&mut s, &tok, SamplerParams::greedy(), opts);
    gen.prompt(&prompt_ids).map_err(FwError::Session)?;
    let mut n_gen = 0;
    while let Some(step) = gen.next_token().map_err(FwError::Session)? {
        if let Some(id) = step.id {
            ids[n_gen] = id;
            n_gen += 1;
        }
        out.write_all(step.text.as_bytes())
            .map_err(|_| FwError::Write)?;
    }
    out.flush().map_err(|_| FwError::Write)?;
    Ok(Report {
        plan: p,
        n_gen,
        stop: gen.stop_reason(),
    })
}
