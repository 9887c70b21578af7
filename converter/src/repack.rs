//! `edgelm repack`: a GGUF file rewritten in another tensor layout (`edgelm::quant::layout`),
//! metadata and tensor order kept, checksums recomputed. `--layout none` restores plain GGUF.

use crate::error::{io, ConvertError, Result};
use crate::write;
use edgelm::gguf::write::{GgufWriter, MetaValue};
use edgelm::gguf::{Gguf, Value, ValueType};
use edgelm::quant::layout::{self, Target};
use edgelm::quant::GgmlType;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What `edgelm repack` does.
#[derive(Clone, Debug)]
pub struct RepackOptions {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// The layout to write.
    pub target: Target,
    /// Overwrite an existing output.
    pub force: bool,
}

/// What a repack wrote.
#[derive(Clone, Debug)]
pub struct RepackReport {
    /// The file written.
    pub output: PathBuf,
    /// Its size.
    pub file_bytes: u64,
    /// Tensors written.
    pub tensors: usize,
    /// Tensors whose bytes changed layout.
    pub changed: usize,
    /// Tensor count per type written.
    pub types: BTreeMap<String, usize>,
}

/// The layout target called `name`, or an error listing the targets.
pub fn target(name: &str) -> Result<Target> {
    Target::from_name(name).ok_or_else(|| ConvertError::Layout(name.into()))
}

/// The `edgelm.layout*` keys for a file whose tensors have the types `types`.
pub(crate) fn layout_keys(target: Target, types: &[GgmlType]) -> Vec<(String, MetaValue)> {
    let mut used: Vec<GgmlType> = types
        .iter()
        .copied()
        .filter(|t| t.interleave() > 1)
        .collect();
    used.sort_by_key(|t| t.id());
    used.dedup();
    if used.is_empty() {
        return Vec::new();
    }
    let arr = |f: &dyn Fn(GgmlType) -> u32| {
        MetaValue::Array(
            ValueType::U32,
            used.iter().map(|&t| MetaValue::U32(f(t))).collect(),
        )
    };
    vec![
        (
            layout::KEY_TARGET.into(),
            MetaValue::Str(target.name().into()),
        ),
        (layout::KEY_TYPE_IDS.into(), arr(&|t| t.id())),
        (layout::KEY_BASE_TYPES.into(), arr(&|t| t.base().id())),
        (
            layout::KEY_INTERLEAVE.into(),
            arr(&|t| t.interleave() as u32),
        ),
    ]
}

/// An owned copy of a metadata value.
fn owned(v: Value<'_>) -> MetaValue {
    match v {
        Value::U8(x) => MetaValue::U8(x),
        Value::I8(x) => MetaValue::I8(x),
        Value::U16(x) => MetaValue::U16(x),
        Value::I16(x) => MetaValue::I16(x),
        Value::U32(x) => MetaValue::U32(x),
        Value::I32(x) => MetaValue::I32(x),
        Value::F32(x) => MetaValue::F32(x),
        Value::Bool(x) => MetaValue::Bool(x),
        Value::Str(x) => MetaValue::Str(x.into()),
        Value::U64(x) => MetaValue::U64(x),
        Value::I64(x) => MetaValue::I64(x),
        Value::F64(x) => MetaValue::F64(x),
        Value::Array(a) => MetaValue::Array(a.elem_type(), a.iter().map(owned).collect()),
        // Value is non-exhaustive; a kind added later would need its line here.
        _ => MetaValue::Str(String::new()),
    }
}

/// Rewrites `src` (rows of `from`) as rows of `to`; both share a base type.
pub(crate) fn relayout(
    from: GgmlType,
    to: GgmlType,
    cols: usize,
    src: &[u8],
) -> std::result::Result<Vec<u8>, edgelm::quant::QuantError> {
    let mut plain = vec![0u8; src.len()];
    match from.interleave() {
        1 => plain.copy_from_slice(src),
        _ => layout::deinterleave(from, cols, src, &mut plain)?,
    }
    if to.interleave() == 1 {
        return Ok(plain);
    }
    let mut out = vec![0u8; src.len()];
    layout::interleave(to, cols, &plain, &mut out)?;
    Ok(out)
}

/// Repacks `o.input` into `o.output`.
pub fn repack(o: &RepackOptions) -> Result<RepackReport> {
    write::check_output(&o.output, o.force)?;
    let file = std::fs::File::open(&o.input).map_err(io(&o.input))?;
    // SAFETY: read-only mapping of the input; the file is not written while we read it (a
    // concurrent writer would at worst make us read changed bytes, never unsound memory access
    // on Linux, where the mapping stays valid).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(&o.input))?;
    let bad = |msg: String| ConvertError::Config {
        path: o.input.clone(),
        msg,
    };
    let g = Gguf::parse(&map).map_err(|e| bad(format!("not a readable GGUF: {e}")))?;
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        // Layout and checksum keys are rewritten for the new tensors.
        if k == layout::KEY_TARGET
            || k.starts_with("edgelm.layout.")
            || k.starts_with("edgelm.checksum.")
        {
            continue;
        }
        w.set(k, owned(v));
    }
    let tensors: Vec<_> = g.tensors().collect();
    let mut new_types = Vec::with_capacity(tensors.len());
    let mut types = BTreeMap::new();
    let mut changed = 0;
    for t in &tensors {
        let ty = o.target.type_for(t.name, t.ty, t.shape());
        w.add_tensor(t.name, ty, t.shape()).map_err(io(&o.output))?;
        *types.entry(ty.name().to_string()).or_insert(0) += 1;
        changed += usize::from(ty != t.ty);
        new_types.push(ty);
    }
    for (k, v) in layout_keys(o.target, &new_types) {
        w.set(&k, v);
    }
    let file_bytes = write::atomic(&o.output, &mut w, |i, put| {
        let t = &tensors[i];
        let to = new_types[i];
        if to == t.ty {
            return put(t.data).map_err(io(&o.output));
        }
        let cols = t.shape()[0] as usize;
        let bytes =
            relayout(t.ty, to, cols, t.data).map_err(|e| bad(format!("tensor {}: {e}", t.name)))?;
        put(&bytes).map_err(io(&o.output))
    })?;
    Ok(RepackReport {
        output: o.output.clone(),
        file_bytes,
        tensors: tensors.len(),
        changed,
        types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_target_names_the_targets() {
        let e = target("x86-avx3").unwrap_err().to_string();
        assert!(e.contains("x86-avx3") && e.contains("arm-dotprod"), "{e}");
        assert_eq!(target("arm-i8mm").unwrap(), Target::ArmI8mm);
    }

    #[test]
    fn layout_keys_declare_each_type_once() {
        let keys = layout_keys(
            Target::X86Avx2,
            &[
                GgmlType::Q8_0_X4,
                GgmlType::F32,
                GgmlType::Q4_1_X4,
                GgmlType::Q8_0_X4,
            ],
        );
        let ids = &keys
            .iter()
            .find(|(k, _)| k == layout::KEY_TYPE_IDS)
            .unwrap()
            .1;
        assert_eq!(
            *ids,
            MetaValue::Array(
                ValueType::U32,
                vec![MetaValue::U32(1027), MetaValue::U32(1032)]
            )
        );
        assert!(layout_keys(Target::None, &[GgmlType::Q8_0]).is_empty());
    }
}
