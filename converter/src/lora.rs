//! PEFT LoRA adapters: merged into the weights at conversion, or rewritten as a GGUF adapter that
//! llama.cpp and edgelm apply at run time.

use crate::checkpoint::{read_json, StFile};
use crate::error::{ConvertError, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// A PEFT adapter folder: adapter_config.json + adapter_model.safetensors.
pub struct PeftAdapter {
    /// The folder.
    pub dir: PathBuf,
    /// lora_alpha.
    pub alpha: f32,
    /// Rank from adapter_config.json (each pair's own rank comes from its shapes).
    pub r: usize,
    /// Rank-stabilized scaling alpha/sqrt(r) instead of alpha/r.
    pub rslora: bool,
    file: StFile,
    /// Base weight name (Hugging Face) → (lora_A name, lora_B name).
    pairs: BTreeMap<String, (String, String)>,
}

/// The two factors of one adapted weight, as f32.
pub struct Factors {
    /// `[r, in]`, row-major.
    pub a: Vec<f32>,
    /// `[out, r]`, row-major.
    pub b: Vec<f32>,
    /// Rank.
    pub r: usize,
}

/// One low-rank update `scale · B·A` for a `[out, in]` weight.
pub struct Delta {
    /// `[r, in]`, row-major.
    pub a: Vec<f32>,
    /// `[out, r]`, row-major.
    pub b: Vec<f32>,
    /// Rank.
    pub r: usize,
    /// Input width.
    pub cols: usize,
    /// The full factor, user scale × alpha/r.
    pub scale: f32,
}

impl Delta {
    /// Adds row `o` of `scale·B·A` to `row`.
    pub fn add_row(&self, o: usize, row: &mut [f32]) {
        for k in 0..self.r {
            let s = self.scale * self.b[o * self.r + k];
            if s == 0.0 {
                continue;
            }
            let a = &self.a[k * self.cols..(k + 1) * self.cols];
            for (x, &y) in row.iter_mut().zip(a) {
                *x += s * y;
            }
        }
    }
}

impl PeftAdapter {
    /// Reads the adapter in `dir`.
    pub fn open(dir: &Path) -> Result<PeftAdapter> {
        let bad = |msg: String| ConvertError::Adapter {
            path: dir.to_path_buf(),
            msg,
        };
        let cfg_path = dir.join("adapter_config.json");
        let cfg = read_json(&cfg_path, "the PEFT adapter config")?;
        let peft_type = cfg
            .get("peft_type")
            .and_then(Value::as_str)
            .unwrap_or("LORA");
        if peft_type != "LORA" {
            return Err(bad(format!(
                "peft_type {peft_type:?} is not supported (LORA only)"
            )));
        }
        if cfg.get("use_dora").and_then(Value::as_bool) == Some(true) {
            return Err(bad("DoRA adapters are not supported".into()));
        }
        for k in ["alpha_pattern", "rank_pattern"] {
            if cfg
                .get(k)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(format!("per-module {k} is not supported")));
            }
        }
        let r = cfg
            .get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .ok_or_else(|| bad("adapter_config.json has no positive \"r\"".into()))?
            as usize;
        let alpha = cfg
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .unwrap_or(r as f64) as f32;
        let rslora = cfg.get("use_rslora").and_then(Value::as_bool) == Some(true);
        let st = dir.join("adapter_model.safetensors");
        if !st.is_file() {
            return Err(ConvertError::Missing {
                path: st,
                what: "the adapter weights (adapter_model.safetensors)",
            });
        }
        let file = StFile::open(&st)?;
        let mut pairs: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        for name in file.names() {
            let plain = name.strip_prefix("base_model.model.").unwrap_or(name);
            let plain = plain.replace(".default.", ".");
            let (base, which) = if let Some(b) = plain.strip_suffix(".lora_A.weight") {
                (b, 0)
            } else if let Some(b) = plain.strip_suffix(".lora_B.weight") {
                (b, 1)
            } else {
                return Err(bad(format!(
                    "tensor {name} is not a lora_A/lora_B weight (embedding LoRA, DoRA and \
                     modules_to_save are not supported)"
                )));
            };
            let e = pairs.entry(format!("{base}.weight")).or_default();
            if which == 0 {
                e.0 = Some(name.to_string());
            } else {
                e.1 = Some(name.to_string());
            }
        }
        let mut done = BTreeMap::new();
        for (base, (a, b)) in pairs {
            match (a, b) {
                (Some(a), Some(b)) => {
                    done.insert(base, (a, b));
                }
                _ => {
                    return Err(bad(format!(
                        "{base}: lora_A and lora_B must both be present"
                    )))
                }
            }
        }
        Ok(PeftAdapter {
            dir: dir.to_path_buf(),
            alpha,
            r,
            rslora,
            file,
            pairs: done,
        })
    }

    /// Hugging Face names of the weights the adapter changes.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.pairs.keys().map(String::as_str)
    }

    /// The alpha that gives this adapter's scaling through llama.cpp's `alpha / r` (rsLoRA folded in).
    pub fn gguf_alpha(&self) -> f32 {
        if self.rslora {
            self.alpha * (self.r as f32).sqrt()
        } else {
            self.alpha
        }
    }

    /// The A and B tensors for base weight `hf` of shape `[rows, cols]`, checked.
    pub fn factors(&self, hf: &str, rows: usize, cols: usize) -> Result<Option<Factors>> {
        let Some((a, b)) = self.pairs.get(hf) else {
            return Ok(None);
        };
        let (Some(ta), Some(tb)) = (self.file.get(a), self.file.get(b)) else {
            return Ok(None);
        };
        let r = ta.shape.first().copied().unwrap_or(0);
        ta.check_shape(&[r, cols], "lora_A is [r, in] of the base weight")?;
        tb.check_shape(&[rows, r], "lora_B is [out, r] of the base weight")?;
        let (va, vb) = (ta.to_vec(), tb.to_vec());
        for (t, v) in [(ta, &va), (tb, &vb)] {
            if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(ConvertError::NonFinite {
                    path: t.path.to_path_buf(),
                    tensor: t.name.to_string(),
                    index,
                    value,
                });
            }
        }
        Ok(Some(Factors { a: va, b: vb, r }))
    }

    /// The merge update for base weight `hf` (`[rows, cols]`), scaled by `user_scale`.
    pub fn delta(
        &self,
        hf: &str,
        rows: usize,
        cols: usize,
        user_scale: f32,
    ) -> Result<Option<Delta>> {
        let Some(Factors { a, b, r }) = self.factors(hf, rows, cols)? else {
            return Ok(None);
        };
        let scale = user_scale * self.gguf_alpha() / r as f32;
        Ok(Some(Delta {
            a,
            b,
            r,
            cols,
            scale,
        }))
    }

    /// Fails if a target is not among `used`: the adapter was made for another model.
    pub fn check_all_used(&self, used: &HashSet<String>) -> Result<()> {
        match self.pairs.keys().find(|k| !used.contains(*k)) {
            Some(k) => Err(ConvertError::Adapter {
                path: self.dir.clone(),
                msg: format!("it changes {k}, which the base model does not have (adapter made for another model?)"),
            }),
            None => Ok(()),
        }
    }
}
