//! A session: one conversation's KV cache and scratch over a borrowed model; feed tokens, read
//! logits, sample. When the context is full, `eval` returns [`SessionError::ContextFull`]: the
//! caller decides whether to stop or [`Session::truncate`] and start over; nothing is silently dropped.

use crate::kv::{KvCache, KvType};
use crate::model::{gemma3, gpt2, llama, Arch, Batch, LayerWeights, Model, State};
use crate::plan::{carve, plan_batch, Plan, PlanError};
use crate::sampler::{top_logprobs, Candidate, Sampler};
use core::fmt;

#[cfg(feature = "alloc")]
mod generate;
#[cfg(feature = "alloc")]
pub use generate::{GenOptions, Generator, Step, StopReason};

/// Why a session call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// All `n_ctx` positions are used.
    ContextFull {
        /// The session's context length.
        n_ctx: usize,
    },
    /// A token id is not in the vocabulary.
    TokenOutOfRange {
        /// The id.
        token: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// The memory plan failed.
    Plan(PlanError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::ContextFull { n_ctx } => {
                write!(f, "context is full ({n_ctx} tokens); use a larger context (-c) or a shorter prompt")
            }
            SessionError::TokenOutOfRange { token, n_vocab } => {
                write!(
                    f,
                    "token id {token} is outside the vocabulary ({n_vocab} tokens)"
                )
            }
            SessionError::Plan(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SessionError {}

impl From<PlanError> for SessionError {
    fn from(e: PlanError) -> Self {
        SessionError::Plan(e)
    }
}

/// The state of one generation: KV cache, activations and position, all in caller memory.
pub struct Session<'m, 'a, L> {
    model: &'m Model<'a, L>,
    kv: KvCache<'m>,
    state: State<'m>,
    batch: Batch<'m>,
    candidates: &'m mut [Candidate],
    pos: usize,
    plan: Plan,
}

impl<'m, 'a, L: AsRef<[LayerWeights<'a>]>> Session<'m, 'a, L> {
    /// A session of context `n_ctx` with an f16 KV cache in `mem`, which must hold
    /// `plan(config, n_ctx).total_bytes`.
    pub fn new(
        model: &'m Model<'a, L>,
        mem: &'m mut [u8],
        n_ctx: usize,
    ) -> Result<Self, SessionError> {
        Self::with_kv(model, mem, n_ctx, KvType::F16)
    }

    /// A session of context `n_ctx` with a KV cache of `kv_type` in `mem`, which must hold
    /// `plan_with(config, n_ctx, kv_type).total_bytes`.
    pub fn with_kv(
        model: &'m Model<'a, L>,
        mem: &'m mut [u8],
        n_ctx: usize,
        kv_type: KvType,
    ) -> Result<Self, SessionError> {
        Self::with_batch(model, mem, n_ctx, kv_type, 1)
    }

    /// A session that evaluates prompts in batches of up to `n_batch` tokens (weights × a matrix
    /// of activations instead of one vector per token), in `mem`, which must hold
    /// `plan_batch(config, n_ctx, kv_type, n_batch).total_bytes`. The logits are bit-identical
    /// to one token at a time.
    pub fn with_batch(
        model: &'m Model<'a, L>,
        mem: &'m mut [u8],
        n_ctx: usize,
        kv_type: KvType,
        n_batch: usize,
    ) -> Result<Self, SessionError> {
        let plan = plan_batch(&model.config, n_ctx, kv_type, n_batch)?;
        let b = carve(&model.config, &plan, mem)?;
        Ok(Session {
            model,
            kv: b.kv,
            state: b.state,
            batch: b.batch,
            candidates: b.candidates,
            pos: 0,
            plan,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'a, L> {
        self.model
    }

    /// Tokens in the context so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.plan.n_ctx
    }

    /// The KV cache element type.
    pub fn kv_type(&self) -> KvType {
        self.plan.kv_type
    }

    /// The memory plan this session was built with.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Forgets everything after the first `pos` tokens (keeps a shared prefix, or `0` to restart)
    /// and returns how many are kept: none when going back after sliding-window rings wrapped,
    /// since the later tokens overwrote rows the earlier positions need.
    pub fn truncate(&mut self, pos: usize) -> usize {
        let ring = self.kv.ring();
        if pos < self.pos && ring.size > 0 && self.pos > ring.size {
            self.pos = 0;
        }
        self.pos = self.pos.min(pos);
        self.pos
    }

    /// Runs one token and returns the logits predicting the next one.
    pub fn eval(&mut self, token: u32) -> Result<&[f32], SessionError> {
        let c = &self.model.config;
        if self.pos >= self.plan.n_ctx {
            return Err(SessionError::ContextFull {
                n_ctx: self.plan.n_ctx,
            });
        }
        if token as usize >= c.n_vocab {
            return Err(SessionError::TokenOutOfRange {
                token,
                n_vocab: c.n_vocab,
            });
        }
        match c.arch {
            Arch::Llama | Arch::Qwen2 => {
                llama::forward(self.model, &mut self.state, &mut self.kv, token, self.pos)
            }
            Arch::Gpt2 => gpt2::forward(self.model, &mut self.state, &mut self.kv, token, self.pos),
            Arch::Gemma3 => {
                gemma3::forward(self.model, &mut self.state, &mut self.kv, token, self.pos)
            }
        }
        self.pos += 1;
        Ok(&self.state.logits[..c.n_vocab])
    }

    /// Runs several tokens, in batches of the plan's batch size; returns the logits after the
    /// last one (the same numbers as [`Session::eval`] of each token in turn).
    pub fn eval_all(&mut self, tokens: &[u32]) -> Result<&[f32], SessionError> {
        let last = tokens.len().saturating_sub(1);
        self.eval_batch(tokens, last, |_, _| {})?;
        Ok(self.logits())
    }

    /// Runs `tokens` in batches of the plan's batch size and calls `each(i, logits)` with the
    /// logits after `tokens[i]` for every `i ≥ first_logits` (perplexity scores these); the
    /// numbers are those of [`Session::eval`] of each token in turn. Nothing runs if the tokens
    /// do not fit in the context or one is out of the vocabulary.
    pub fn eval_batch(
        &mut self,
        tokens: &[u32],
        first_logits: usize,
        mut each: impl FnMut(usize, &[f32]),
    ) -> Result<(), SessionError> {
        let c = &self.model.config;
        if self.pos + tokens.len() > self.plan.n_ctx {
            return Err(SessionError::ContextFull {
                n_ctx: self.plan.n_ctx,
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= c.n_vocab) {
            return Err(SessionError::TokenOutOfRange {
                token,
                n_vocab: c.n_vocab,
            });
        }
        let batched = self.batch.n > 1 && matches!(c.arch, Arch::Llama | Arch::Qwen2);
        if !batched {
            for (i, &t) in tokens.iter().enumerate() {
                let logits = self.eval(t)?;
                if i >= first_logits {
                    each(i, logits);
                }
            }
            return Ok(());
        }
        for (k, chunk) in tokens.chunks(self.batch.n).enumerate() {
            let start = k * self.batch.n;
            if start + chunk.len() <= first_logits {
                // No logits wanted from this chunk, but the last one's must exist.
                if start + chunk.len() < tokens.len() {
                    llama::forward_batch_each(
                        self.model,
                        &mut self.state,
                        &mut self.batch,
                        &mut self.kv,
                        chunk,
                        self.pos,
                        chunk.len(),
                        &mut |_, _| {},
                    );
                    self.pos += chunk.len();
                    continue;
                }
            }
            let from = first_logits.saturating_sub(start).min(chunk.len() - 1);
            llama::forward_batch_each(
                self.model,
                &mut self.state,
                &mut self.batch,
                &mut self.kv,
                chunk,
                self.pos,
                from,
                &mut |i, l| {
                    if start + i >= first_logits {
                        each(start + i, l)
                    }
                },
            );
            self.pos += chunk.len();
        }
        Ok(())
    }

    /// The logits of the last evaluated token.
    pub fn logits(&self) -> &[f32] {
        &self.state.logits[..self.model.config.n_vocab]
    }

    /// Samples the next token from the current logits.
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        let n = self.model.config.n_vocab;
        sampler.sample(&self.state.logits[..n], self.candidates)
    }

    /// The `k` most likely next tokens with log-probabilities of the raw logits.
    pub fn top_logprobs(&mut self, k: usize) -> &[Candidate] {
        let n = self.model.config.n_vocab;
        top_logprobs(&self.state.logits[..n], k, self.candidates)
    }
}

/// Allocates exactly `plan.total_bytes` of session memory.
#[cfg(feature = "alloc")]
pub fn alloc_memory(plan: &Plan) -> alloc::vec::Vec<u8> {
    alloc::vec![0u8; plan.total_bytes]
}
