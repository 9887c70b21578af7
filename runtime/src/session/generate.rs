//! Streaming generation over a session: feed a prompt, pull tokens with their text, stop on
//! end-of-generation tokens, a token budget, a stop string, or a full context.

use super::{Session, SessionError};
use crate::model::LayerWeights;
use crate::sampler::{Candidate, Sampler, SamplerParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use alloc::string::String;
use alloc::vec::Vec;

/// What a generation stops on, besides end-of-generation tokens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenOptions {
    /// Most tokens to generate (`None` = until end of text or full context).
    pub max_tokens: Option<usize>,
    /// Stop when any of these texts appears (the stop text itself is not returned).
    pub stop: Vec<String>,
    /// Top candidates with log-probabilities to report per token (0 = none).
    pub logprobs: usize,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfText,
    /// `max_tokens` were generated.
    MaxTokens,
    /// A stop string appeared.
    StopString,
    /// The context is full.
    ContextFull,
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Token id; `None` for the final step that only releases held-back text.
    pub id: Option<u32>,
    /// Text that became printable with this token (may be empty mid-character or near a stop string).
    pub text: String,
    /// Top candidates before sampling, log-softmax of the raw logits (when asked for).
    pub logprobs: Vec<Candidate>,
}

/// Pulls tokens out of a session one at a time.
pub struct Generator<'s, 'm, 'a, L> {
    session: &'s mut Session<'m, 'a, L>,
    tok: &'s Tokenizer,
    sampler: Sampler,
    opts: GenOptions,
    decoder: StreamDecoder,
    /// Decoded text held back because it could be the start of a stop string.
    held: String,
    n_gen: usize,
    stop: Option<StopReason>,
    /// The last sampled token, evaluated only when another one is asked for: the final token of a
    /// generation never costs a forward pass.
    pending: Option<u32>,
}

impl<'s, 'm, 'a, L: AsRef<[LayerWeights<'a>]>> Generator<'s, 'm, 'a, L> {
    /// A generator continuing from the session's current position.
    pub fn new(
        session: &'s mut Session<'m, 'a, L>,
        tok: &'s Tokenizer,
        params: SamplerParams,
        opts: GenOptions,
    ) -> Self {
        Generator {
            session,
            tok,
            sampler: Sampler::new(params),
            opts,
            decoder: StreamDecoder::new(),
            held: String::new(),
            n_gen: 0,
            stop: None,
            pending: None,
        }
    }

    /// Evaluates prompt tokens (they also count for the repetition penalty).
    pub fn prompt(&mut self, ids: &[u32]) -> Result<(), SessionError> {
        if let Some(p) = self.pending.take() {
            self.session.eval(p)?;
        }
        self.session.eval_all(ids)?;
        for &t in ids {
            self.sampler.accept(t);
        }
        Ok(())
    }

    /// Why generation stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Tokens generated so far.
    pub fn n_generated(&self) -> usize {
        self.n_gen
    }

    /// The next token, or `None` when generation has stopped.
    pub fn next_token(&mut self) -> Result<Option<Step>, SessionError> {
        if self.stop.is_some() {
            return Ok(None);
        }
        if self.opts.max_tokens.is_some_and(|m| self.n_gen >= m) {
            return Ok(self.finish(StopReason::MaxTokens));
        }
        if self.session.pos() >= self.session.n_ctx() {
            return Ok(self.finish(StopReason::ContextFull));
        }
        if let Some(p) = self.pending.take() {
            self.session.eval(p)?;
            if self.session.pos() >= self.session.n_ctx() {
                return Ok(self.finish(StopReason::ContextFull));
            }
        }
        let logprobs = match self.opts.logprobs {
            0 => Vec::new(),
            k => self.session.top_logprobs(k).to_vec(),
        };
        let id = self.session.sample(&mut self.sampler);
        if self.tok.is_eog(id) {
            return Ok(self.finish(StopReason::EndOfText));
        }
        self.sampler.accept(id);
        self.n_gen += 1;
        self.held
            .push_str(self.decoder.push(self.tok.token_bytes(id, false)));
        let mut text = self.release_text();
        if self.stop.is_none() {
            self.pending = Some(id);
        }
        if self.stop.is_none() && self.opts.max_tokens.is_some_and(|m| self.n_gen >= m) {
            // Last token: release what was held back for stop strings.
            text.push_str(&self.flush());
        }
        Ok(Some(Step {
            id: Some(id),
            text,
            logprobs,
        }))
    }

    /// Splits held text into what can be shown now and what might still begin a stop string.
    fn release_text(&mut self) -> String {
        for s in &self.opts.stop {
            if let Some(i) = self.held.find(s.as_str()) {
                let out = String::from(&self.held[..i]);
                self.held.clear();
                self.stop = Some(StopReason::StopString);
                return out;
            }
        }
        let keep = self
            .opts
            .stop
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = String::from(&self.held[..cut]);
        self.held.drain(..cut);
        out
    }

    fn flush(&mut self) -> String {
        let mut t = core::mem::take(&mut self.held);
        t.push_str(self.decoder.finish());
        t
    }

    fn finish(&mut self, why: StopReason) -> Option<Step> {
        self.stop = Some(why);
        let text = self.flush();
        // Text still held (a partial stop string or character) comes out as a last step without a token.
        if text.is_empty() {
            None
        } else {
            Some(Step {
                id: None,
                text,
                logprobs: Vec::new(),
            })
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop` (on char boundaries).
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}
