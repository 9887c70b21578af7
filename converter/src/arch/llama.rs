//! Llama family (SmolLM/SmolLM2, TinyLlama, Llama 2/3.x) and Qwen2: `LlamaForCausalLM`, `Qwen2ForCausalLM`.

use super::{kv, u32v, Cfg, Job, Mapped, Plan, Role, Source};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use edgelm::gguf::write::MetaValue;

/// Hugging Face module → GGUF tensor, per block.
const BLOCK: [(&str, &str); 7] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

pub(super) fn plan(ck: &Checkpoint, c: &Cfg<'_>, qwen2: bool) -> Result<Plan> {
    let arch = if qwen2 { "qwen2" } else { "llama" };
    let d = c.usize("hidden_size")?;
    let ff = c.usize("intermediate_size")?;
    let n_layer = c.at_most(
        "num_hidden_layers",
        c.usize("num_hidden_layers")?,
        super::MAX_LAYERS,
    )?;
    let n_head = c.usize("num_attention_heads")?;
    let n_head_kv = c.opt_usize("num_key_value_heads")?.unwrap_or(n_head);
    let head_dim = c.at_most(
        "head_dim",
        c.opt_usize("head_dim")?.unwrap_or(d / n_head),
        super::MAX_HEAD_DIM,
    )?;
    let vocab = c.usize("vocab_size")?;
    let n_ctx = c.opt_usize("max_position_embeddings")?.unwrap_or(2048);
    let eps = c.opt_f32("rms_norm_eps")?.unwrap_or(1e-6);
    let theta = c.opt_f32("rope_theta")?.unwrap_or(10000.0);
    if n_head_kv == 0 || n_head % n_head_kv != 0 || head_dim % 2 != 0 {
        return Err(c.invalid(format!(
            "num_attention_heads {n_head} / num_key_value_heads {n_head_kv} / head_dim {head_dim} do not fit together"
        )));
    }
    let (q, kvd) = (n_head * head_dim, n_head_kv * head_dim);
    // Llama's own configs default to untied heads; a checkpoint without lm_head is tied anyway.
    let tied = c.opt_bool("tie_word_embeddings").unwrap_or(false) || !ck.has("lm_head.weight");
    let attention_bias = qwen2 || c.opt_bool("attention_bias").unwrap_or(false);
    let rope_freqs = rope_factors(c, theta, head_dim)?;

    let mut jobs = vec![Job::matrix(
        "token_embd.weight".into(),
        vocab,
        d,
        Role::TokenEmbd,
        Source::Rows("model.embed_tokens.weight".into()),
    )];
    if let Some(f) = rope_freqs {
        jobs.push(Job::vector(
            "rope_freqs.weight".into(),
            f.len(),
            Source::Values(f),
        ));
    }
    for l in 0..n_layer {
        let hf = |m: &str, p: &str| format!("model.layers.{l}.{m}.{p}");
        let gg = |t: &str, p: &str| format!("blk.{l}.{t}.{p}");
        let src = |m: &str, p: &str, heads: usize| {
            if qwen2 || heads == 0 {
                Source::Rows(hf(m, p))
            } else {
                Source::Permuted(hf(m, p), heads)
            }
        };
        jobs.push(Job::vector(
            gg("attn_norm", "weight"),
            d,
            Source::Rows(hf("input_layernorm", "weight")),
        ));
        let attn = [
            ("self_attn.q_proj", "attn_q", q, n_head, Role::Attn),
            ("self_attn.k_proj", "attn_k", kvd, n_head_kv, Role::Attn),
            ("self_attn.v_proj", "attn_v", kvd, 0, Role::AttnV),
        ];
        for (m, t, rows, heads, role) in attn {
            jobs.push(
                Job::matrix(gg(t, "weight"), rows, d, role, src(m, "weight", heads)).in_layer(l),
            );
            if attention_bias {
                jobs.push(Job::vector(gg(t, "bias"), rows, src(m, "bias", heads)));
            }
        }
        jobs.push(
            Job::matrix(
                gg("attn_output", "weight"),
                d,
                q,
                Role::Attn,
                Source::Rows(hf("self_attn.o_proj", "weight")),
            )
            .in_layer(l),
        );
        if attention_bias && !qwen2 && ck.has(&hf("self_attn.o_proj", "bias")) {
            jobs.push(Job::vector(
                gg("attn_output", "bias"),
                d,
                Source::Rows(hf("self_attn.o_proj", "bias")),
            ));
        }
        jobs.push(Job::vector(
            gg("ffn_norm", "weight"),
            d,
            Source::Rows(hf("post_attention_layernorm", "weight")),
        ));
        for (m, t, rows, cols, role) in [
            ("mlp.gate_proj", "ffn_gate", ff, d, Role::Ffn),
            ("mlp.up_proj", "ffn_up", ff, d, Role::Ffn),
            ("mlp.down_proj", "ffn_down", d, ff, Role::FfnDown),
        ] {
            jobs.push(
                Job::matrix(
                    gg(t, "weight"),
                    rows,
                    cols,
                    role,
                    Source::Rows(hf(m, "weight")),
                )
                .in_layer(l),
            );
        }
    }
    jobs.push(Job::vector(
        "output_norm.weight".into(),
        d,
        Source::Rows("model.norm.weight".into()),
    ));
    if !tied {
        jobs.push(Job::matrix(
            "output.weight".into(),
            vocab,
            d,
            Role::Output,
            Source::Rows("lm_head.weight".into()),
        ));
    }

    let p = |k: &str| format!("{arch}.{k}");
    let kvs = vec![
        kv(p("context_length"), u32v(n_ctx)),
        kv(p("embedding_length"), u32v(d)),
        kv(p("block_count"), u32v(n_layer)),
        kv(p("feed_forward_length"), u32v(ff)),
        kv(p("rope.dimension_count"), u32v(head_dim)),
        kv(p("attention.head_count"), u32v(n_head)),
        kv(p("attention.head_count_kv"), u32v(n_head_kv)),
        kv(p("attention.layer_norm_rms_epsilon"), MetaValue::F32(eps)),
        kv(p("rope.freq_base"), MetaValue::F32(theta)),
        kv(p("vocab_size"), u32v(vocab)),
    ];
    Ok(Plan {
        arch,
        kv: kvs,
        jobs,
        n_layer,
        tied,
        ignored: Vec::new(),
        vocab_size: vocab,
    })
}

/// Llama 3.1-style `rope_scaling` becomes llama.cpp's `rope_freqs.weight` factors; other kinds are refused
/// rather than silently ignored.
fn rope_factors(c: &Cfg<'_>, theta: f32, head_dim: usize) -> Result<Option<Vec<f32>>> {
    let Some(s) = c.get("rope_scaling") else {
        return Ok(None);
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if kind != "llama3" {
        return Err(c.invalid(format!(
            "rope_scaling type {kind:?} is not supported (supported: none, llama3)"
        )));
    }
    let num = |k: &str, d: f64| s.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    let factor = num("factor", 8.0);
    let low = num("low_freq_factor", 1.0);
    let high = num("high_freq_factor", 4.0);
    let old_ctx = num("original_max_position_embeddings", 8192.0);
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    let mut out = Vec::with_capacity(head_dim / 2);
    for i in (0..head_dim).step_by(2) {
        let freq = 1.0 / (theta as f64).powf(i as f64 / head_dim as f64);
        let wavelen = 2.0 * std::f64::consts::PI / freq;
        let f = if wavelen < high_wavelen {
            1.0
        } else if wavelen > low_wavelen {
            factor
        } else {
            let smooth = (old_ctx / wavelen - low) / (high - low);
            1.0 / ((1.0 - smooth) / factor + smooth)
        };
        out.push(f as f32);
    }
    Ok(Some(out))
}

/// `model.layers.N.<module>.weight` → `blk.N.<tensor>.weight`, and `lm_head.weight` → `output.weight`.
pub(super) fn map_name(hf: &str, permute: bool, n_head: usize, n_head_kv: usize) -> Option<Mapped> {
    if hf == "lm_head.weight" {
        return Some(Mapped {
            name: "output.weight".into(),
            permute: None,
        });
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (l, module) = rest.split_once('.')?;
    let l: usize = l.parse().ok()?;
    let module = module.strip_suffix(".weight")?;
    let (_, t) = BLOCK.iter().find(|(m, _)| *m == module)?;
    let heads = match *t {
        "attn_q" if permute => Some(n_head),
        "attn_k" if permute => Some(n_head_kv),
        _ => None,
    };
    Some(Mapped {
        name: format!("blk.{l}.{t}.weight"),
        permute: heads,
    })
}
