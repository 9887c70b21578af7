//! Which ggml type each tensor gets: pure types, and the mixed `q4_k_m` recipe after llama.cpp's.

use crate::arch::{Job, Role};
use crate::error::{ConvertError, Result};
use edgelm::quant::GgmlType;

/// An output type as `--quant` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// 32-bit floats.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit, blocks of 32 (8.5 bits per weight).
    Q8_0,
    /// 4-bit, blocks of 32 (4.5 bits per weight).
    Q4_0,
    /// 4-bit k-quant, super-blocks of 256 (4.5 bits per weight).
    Q4K,
    /// 6-bit k-quant (6.5625 bits per weight).
    Q6K,
    /// Q4_K with the head, half the V and FFN-down projections at Q6_K, fused QKV at Q5_K.
    Q4KM,
}

impl Quant {
    /// All names `--quant` accepts.
    pub const NAMES: [&'static str; 8] = [
        "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m",
    ];

    /// Parses a `--quant` value.
    pub fn parse(s: &str) -> Result<Quant> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => Quant::F32,
            "f16" => Quant::F16,
            "bf16" => Quant::Bf16,
            "q8_0" => Quant::Q8_0,
            "q4_0" => Quant::Q4_0,
            "q4_k" | "q4_k_s" => Quant::Q4K,
            "q6_k" => Quant::Q6K,
            "q4_k_m" => Quant::Q4KM,
            _ => return Err(ConvertError::Quant(s.to_string())),
        })
    }

    /// The `--quant` name.
    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::F16 => "f16",
            Quant::Bf16 => "bf16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4_0 => "q4_0",
            Quant::Q4K => "q4_k",
            Quant::Q6K => "q6_k",
            Quant::Q4KM => "q4_k_m",
        }
    }

    /// llama.cpp's `general.file_type` for this recipe.
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q4_0 => 2,
            Quant::Q8_0 => 7,
            Quant::Q4K => 14,
            Quant::Q4KM => 15,
            Quant::Q6K => 18,
            Quant::Bf16 => 32,
        }
    }

    fn base(self) -> GgmlType {
        match self {
            Quant::F32 => GgmlType::F32,
            Quant::F16 => GgmlType::F16,
            Quant::Bf16 => GgmlType::BF16,
            Quant::Q8_0 => GgmlType::Q8_0,
            Quant::Q4_0 => GgmlType::Q4_0,
            Quant::Q4K | Quant::Q4KM => GgmlType::Q4_K,
            Quant::Q6K => GgmlType::Q6_K,
        }
    }
}

/// The type of `job` in a model of `n_layer` blocks whose head is `tied` to the embedding.
pub fn type_for(q: Quant, job: &Job, n_layer: usize, tied: bool) -> GgmlType {
    if job.vector {
        return GgmlType::F32;
    }
    let mut ty = q.base();
    if q == Quant::Q4KM {
        // llama.cpp's use_more_bits: the first and last eighth of the blocks, and every third between.
        let more = |l: usize| {
            let n = n_layer as isize;
            let i = l as isize;
            i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
        };
        let layer = job.layer.unwrap_or(0);
        ty = match job.role {
            Role::Output => GgmlType::Q6_K,
            Role::TokenEmbd if tied => GgmlType::Q6_K,
            Role::AttnV | Role::FfnDown if more(layer) => GgmlType::Q6_K,
            Role::AttnQkv => GgmlType::Q5_K,
            _ => ty,
        };
        // llama.cpp keeps a head whose rows do not fill 256-blocks at Q8_0.
        let head = job.role == Role::Output || (tied && job.role == Role::TokenEmbd);
        if head && !job.cols.is_multiple_of(256) {
            ty = GgmlType::Q8_0;
        }
    }
    fallback(ty, job.cols)
}

/// A type whose blocks do not divide the row falls back as llama.cpp's `tensor_type_fallback` does.
fn fallback(ty: GgmlType, cols: usize) -> GgmlType {
    if cols.is_multiple_of(ty.block_size()) {
        return ty;
    }
    let next = match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    if cols.is_multiple_of(next.block_size()) {
        next
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Source;

    fn m(role: Role, layer: usize, cols: usize) -> Job {
        Job::matrix("t".into(), 64, cols, role, Source::Rows("t".into())).in_layer(layer)
    }

    #[test]
    fn q4_k_m_follows_llama_cpp() {
        let q = Quant::Q4KM;
        // 30 blocks: more bits for 0..3, 26..29 and every third from 3 (5, 8, ...).
        let v: Vec<bool> = (0..30)
            .map(|l| type_for(q, &m(Role::AttnV, l, 576), 30, true) == GgmlType::Q5_0)
            .collect();
        // 576 is not a multiple of 256, so Q4_K falls back to Q5_0 and Q6_K to Q8_0.
        assert!(!v[0] && v[3] && v[4] && !v[5] && !v[29]);
        assert_eq!(
            type_for(q, &m(Role::Attn, 4, 1536), 30, true),
            GgmlType::Q4_K
        );
        assert_eq!(
            type_for(q, &m(Role::FfnDown, 0, 1536), 30, true),
            GgmlType::Q6_K
        );
        assert_eq!(
            type_for(q, &m(Role::TokenEmbd, 0, 576), 30, true),
            GgmlType::Q8_0
        );
        assert_eq!(
            type_for(q, &m(Role::TokenEmbd, 0, 768), 30, false),
            GgmlType::Q4_K
        );
        assert_eq!(
            type_for(q, &m(Role::AttnQkv, 7, 768), 12, true),
            GgmlType::Q5_K
        );
        assert_eq!(
            type_for(Quant::Q4_0, &m(Role::Attn, 0, 1088), 3, true),
            GgmlType::Q4_0
        );
        assert_eq!(
            type_for(Quant::Q8_0, &m(Role::Attn, 0, 48), 3, true),
            GgmlType::F16
        );
        assert_eq!(
            type_for(Quant::Q6K, &m(Role::Attn, 0, 1088), 3, true),
            GgmlType::Q8_0
        );
    }
}
