//! GPT-2 and the Cerebras-GPT family: `GPT2LMHeadModel` (learned positions, LayerNorm with bias,
//! fused QKV, Conv1D weights stored `[in, out]`).

use super::{kv, u32v, Cfg, Job, Mapped, Plan, Role, Source};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use edgelm::gguf::write::MetaValue;

/// Hugging Face Conv1D module → GGUF tensor, per block.
const BLOCK: [(&str, &str); 4] = [
    ("attn.c_attn", "attn_qkv"),
    ("attn.c_proj", "attn_output"),
    ("mlp.c_fc", "ffn_up"),
    ("mlp.c_proj", "ffn_down"),
];

/// Activations the runtime implements, as Hugging Face names them.
const ACTIVATIONS: [&str; 4] = ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

pub(super) fn plan(ck: &Checkpoint, c: &Cfg<'_>) -> Result<Plan> {
    let d = c.usize("n_embd")?;
    let n_layer = c.at_most("n_layer", c.usize("n_layer")?, super::MAX_LAYERS)?;
    let n_head = c.usize("n_head")?;
    let n_pos = match c.opt_usize("n_positions")? {
        Some(n) => n,
        None => c.usize("n_ctx")?,
    };
    let ff = c.opt_usize("n_inner")?.unwrap_or(4 * d);
    let vocab = c.usize("vocab_size")?;
    let eps = c.opt_f32("layer_norm_epsilon")?.unwrap_or(1e-5);
    let act = c.opt_str("activation_function").unwrap_or("gelu_new");
    if !ACTIVATIONS.contains(&act) {
        return Err(c.invalid(format!(
            "activation_function {act:?} is not supported (supported: {})",
            ACTIVATIONS.join(", ")
        )));
    }
    if d % n_head != 0 {
        return Err(c.invalid(format!("n_embd {d} is not a multiple of n_head {n_head}")));
    }
    // The original OpenAI upload has no "transformer." prefix; Hugging Face saves add it.
    let pre = if ck.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let tied = c.opt_bool("tie_word_embeddings").unwrap_or(true) || !ck.has("lm_head.weight");

    let t = |n: &str| format!("{pre}{n}");
    let mut jobs = vec![
        Job::matrix(
            "token_embd.weight".into(),
            vocab,
            d,
            Role::TokenEmbd,
            Source::Rows(t("wte.weight")),
        ),
        Job::matrix(
            "position_embd.weight".into(),
            n_pos,
            d,
            Role::PosEmbd,
            Source::Rows(t("wpe.weight")),
        ),
    ];
    for l in 0..n_layer {
        let hf = |m: &str| format!("{pre}h.{l}.{m}");
        let gg = |n: &str| format!("blk.{l}.{n}");
        let norm = |jobs: &mut Vec<Job>, hf_ln: &str, gg_ln: &str| {
            for p in ["weight", "bias"] {
                jobs.push(Job::vector(
                    gg(&format!("{gg_ln}.{p}")),
                    d,
                    Source::Rows(hf(&format!("{hf_ln}.{p}"))),
                ));
            }
        };
        norm(&mut jobs, "ln_1", "attn_norm");
        let shapes = [
            (3 * d, d, Role::AttnQkv),
            (d, d, Role::Attn),
            (ff, d, Role::Ffn),
            (d, ff, Role::FfnDown),
        ];
        for (i, ((m, g), (rows, cols, role))) in BLOCK.iter().zip(shapes).enumerate() {
            jobs.push(
                Job::matrix(
                    gg(&format!("{g}.weight")),
                    rows,
                    cols,
                    role,
                    Source::Transposed(hf(&format!("{m}.weight"))),
                )
                .in_layer(l),
            );
            jobs.push(Job::vector(
                gg(&format!("{g}.bias")),
                rows,
                Source::Rows(hf(&format!("{m}.bias"))),
            ));
            if i == 1 {
                norm(&mut jobs, "ln_2", "ffn_norm");
            }
        }
    }
    for p in ["weight", "bias"] {
        jobs.push(Job::vector(
            format!("output_norm.{p}"),
            d,
            Source::Rows(t(&format!("ln_f.{p}"))),
        ));
    }
    if !tied {
        jobs.push(Job::matrix(
            "output.weight".into(),
            vocab,
            d,
            Role::Output,
            Source::Rows("lm_head.weight".into()),
        ));
    }
    let kvs = vec![
        kv("gpt2.context_length", u32v(n_pos)),
        kv("gpt2.embedding_length", u32v(d)),
        kv("gpt2.feed_forward_length", u32v(ff)),
        kv("gpt2.block_count", u32v(n_layer)),
        kv("gpt2.attention.head_count", u32v(n_head)),
        kv("gpt2.attention.layer_norm_epsilon", MetaValue::F32(eps)),
        // llama.cpp always uses the tanh form; edgelm honours the exact one Cerebras-GPT names.
        kv("edgelm.activation_function", MetaValue::Str(act.into())),
    ];
    Ok(Plan {
        arch: "gpt2",
        kv: kvs,
        jobs,
        n_layer,
        tied,
        ignored: Vec::new(),
        vocab_size: vocab,
    })
}

/// `[transformer.]h.N.<module>.weight` → `blk.N.<tensor>.weight`.
pub(super) fn map_name(hf: &str) -> Option<Mapped> {
    if hf == "lm_head.weight" {
        return Some(Mapped {
            name: "output.weight".into(),
            permute: None,
        });
    }
    let rest = hf.strip_prefix("transformer.").unwrap_or(hf);
    let rest = rest.strip_prefix("h.")?;
    let (l, module) = rest.split_once('.')?;
    let l: usize = l.parse().ok()?;
    let module = module.strip_suffix(".weight")?;
    let (_, t) = BLOCK.iter().find(|(m, _)| *m == module)?;
    Some(Mapped {
        name: format!("blk.{l}.{t}.weight"),
        permute: None,
    })
}
