//! Token samplers: greedy, temperature, top-k, top-p, min-p and repetition penalty, in llama.cpp's
//! order, with a seeded generator so the same seed gives the same text on every machine.

mod rng;

pub use rng::Rng;

/// One vocabulary entry under consideration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Candidate {
    /// Token id.
    pub id: u32,
    /// Logit, or probability / log-probability once normalized.
    pub logit: f32,
}

/// Most recent tokens the repetition penalty can look back over.
pub const MAX_PENALTY_WINDOW: usize = 256;

/// Sampling settings (defaults are llama.cpp's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerParams {
    /// Temperature; `<= 0` means greedy (argmax).
    pub temp: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at (at most [`MAX_PENALTY_WINDOW`]).
    pub repeat_last_n: usize,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerParams {
            temp: 0.0,
            ..Default::default()
        }
    }
}

/// A sampler with its random state and recent-token window; holds no heap memory.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// Settings.
    pub params: SamplerParams,
    rng: Rng,
    recent: [u32; MAX_PENALTY_WINDOW],
    n_recent: usize,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Sampler {
            params,
            rng: Rng::new(params.seed),
            recent: [0; MAX_PENALTY_WINDOW],
            n_recent: 0,
        }
    }

    /// Records a token (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        self.recent[self.n_recent % MAX_PENALTY_WINDOW] = token;
        self.n_recent += 1;
    }

    /// Forgets the recorded tokens.
    pub fn reset(&mut self) {
        self.n_recent = 0;
    }

    fn penalized(&self, id: u32) -> bool {
        let n = self
            .params
            .repeat_last_n
            .min(MAX_PENALTY_WINDOW)
            .min(self.n_recent);
        (1..=n).any(|back| self.recent[(self.n_recent - back) % MAX_PENALTY_WINDOW] == id)
    }

    /// Picks the next token from `logits`, using `cand` (one entry per logit) as work space.
    pub fn sample(&mut self, logits: &[f32], cand: &mut [Candidate]) -> u32 {
        let p = self.params;
        let n = logits.len().min(cand.len());
        let cand = &mut cand[..n];
        for (i, (c, &l)) in cand.iter_mut().zip(logits).enumerate() {
            *c = Candidate {
                id: i as u32,
                logit: l,
            };
        }
        if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
            for c in cand.iter_mut() {
                if self.penalized(c.id) {
                    c.logit = if c.logit > 0.0 {
                        c.logit / p.repeat_penalty
                    } else {
                        c.logit * p.repeat_penalty
                    };
                }
            }
        }
        if p.temp <= 0.0 || n == 1 {
            return argmax(cand);
        }
        let mut len = n;
        if p.top_k > 0 && p.top_k < len {
            cand.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            len = p.top_k;
        }
        let cand = &mut cand[..len];
        cand.sort_unstable_by(by_logit_desc);
        softmax(cand, 1.0);
        let mut len = cand.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, c) in cand.iter().enumerate() {
                acc += c.logit;
                if acc >= p.top_p {
                    len = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = cand[0].logit * p.min_p;
            len = cand[..len]
                .iter()
                .take_while(|c| c.logit >= floor)
                .count()
                .max(1);
        }
        let cand = &mut cand[..len];
        // Temperature on the surviving set: p^(1/T), renormalized — same as softmax(logit / T).
        for c in cand.iter_mut() {
            c.logit = libm::logf(c.logit) / p.temp;
        }
        softmax(cand, 1.0);
        let r = self.rng.next_f32();
        let mut acc = 0.0;
        for c in cand.iter() {
            acc += c.logit;
            if r < acc {
                return c.id;
            }
        }
        cand[cand.len() - 1].id
    }
}

fn by_logit_desc(a: &Candidate, b: &Candidate) -> core::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// The id with the largest value (the first one on ties).
pub fn argmax(cand: &[Candidate]) -> u32 {
    let mut best = 0;
    for (i, c) in cand.iter().enumerate() {
        if c.logit > cand[best].logit {
            best = i;
        }
    }
    cand.get(best).map(|c| c.id).unwrap_or(0)
}

/// Replaces logits with probabilities, `softmax(logit / temp)`.
fn softmax(cand: &mut [Candidate], temp: f32) {
    let max = cand
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for c in cand.iter_mut() {
        c.logit = libm::expf((c.logit - max) / temp);
        sum += c.logit as f64;
    }
    for c in cand.iter_mut() {
        c.logit = (c.logit as f64 / sum) as f32;
    }
}

/// log p(`id`) under the softmax of raw `logits`, computed in f64 (perplexity, log-likelihoods).
pub fn logprob(logits: &[f32], id: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| libm::exp(l as f64 - max)).sum();
    logits[id as usize] as f64 - max - libm::log(sum)
}

/// The `k` most likely tokens of raw `logits` with their log-probabilities (log-softmax), best first.
pub fn top_logprobs<'c>(logits: &[f32], k: usize, cand: &'c mut [Candidate]) -> &'c [Candidate] {
    let n = logits.len().min(cand.len());
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max
        + libm::log(
            logits
                .iter()
                .map(|&l| libm::exp((l - max) as f64))
                .sum::<f64>(),
        ) as f32;
    for (i, (c, &l)) in cand.iter_mut().zip(logits).enumerate() {
        *c = Candidate {
            id: i as u32,
            logit: l - lse,
        };
    }
    let k = k.min(n);
    if k == 0 {
        return &[];
    }
    if k < n {
        cand[..n].select_nth_unstable_by(k - 1, by_logit_desc);
    }
    cand[..k].sort_unstable_by(by_logit_desc);
    &cand[..k]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(n: usize) -> [Candidate; 8] {
        let _ = n;
        [Candidate::default(); 8]
    }

    #[test]
    fn greedy_picks_max_and_penalty_moves_it() {
        let logits = [0.1, 2.0, 1.9, -1.0];
        let mut c = cands(4);
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample(&logits, &mut c), 1);
        s.params.repeat_penalty = 1.5;
        s.accept(1);
        assert_eq!(s.sample(&logits, &mut c), 2);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2];
        let p = SamplerParams {
            temp: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams { seed, ..p });
            let mut c = cands(8);
            let mut out = [0u32; 32];
            for o in out.iter_mut() {
                *o = s.sample(&logits, &mut c);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // With no truncation every token gets drawn sometimes.
        let mut seen = [false; 8];
        let mut s = Sampler::new(p);
        let mut c = cands(8);
        for _ in 0..2000 {
            seen[s.sample(&logits, &mut c) as usize] = true;
        }
        assert!(seen.iter().all(|&x| x));
    }

    #[test]
    fn top_k_one_is_greedy_and_min_p_cuts() {
        let logits = [0.0, 5.0, 4.9, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut c = cands(8);
        let mut s = Sampler::new(SamplerParams {
            temp: 1.0,
            top_k: 1,
            ..Default::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&logits, &mut c), 1);
        }
        let mut s = Sampler::new(SamplerParams {
            temp: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..Default::default()
        });
        for _ in 0..200 {
            assert!(matches!(s.sample(&logits, &mut c), 1 | 2));
        }
    }

    #[test]
    fn logprobs_are_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let mut c = cands(3);
        let top = top_logprobs(&logits, 2, &mut c);
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
        assert_eq!(top[0].id, 2);
        assert!((top[0].logit - (3.0 - lse)).abs() < 1e-6);
        assert_eq!(top[1].id, 1);
    }
}
