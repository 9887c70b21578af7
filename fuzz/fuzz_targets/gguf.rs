//! The GGUF reader on arbitrary bytes: parse, then everything a caller can do with a parsed file
//! (walk the metadata and tensors, load a model, read its tokenizer, parse and apply a LoRA
//! adapter, plan memory and evaluate a token). None of it may panic, and what `parse` accepts
//! must be readable in full afterwards.
#![no_main]

use edgelm::gguf::{Gguf, Value};
use edgelm::model::{Adapter, LoraDelta, ModelVec};
use edgelm::session::{alloc_memory, Session};
use edgelm::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

/// Value equality where NaN equals itself (floats are compared by their text).
fn same(a: Option<Value<'_>>, b: Option<Value<'_>>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Touches every element of a value (arrays of arrays included).
fn walk(v: &Value<'_>) -> usize {
    match v {
        Value::Array(a) => {
            let mut n = 0;
            for (i, e) in a.iter().enumerate() {
                n += walk(&e);
                assert!(same(a.get(i), Some(e)), "get(i) equals the i-th element");
            }
            assert_eq!(
                a.iter().count(),
                a.len(),
                "an array yields all its elements"
            );
            assert!(a.get(a.len()).is_none());
            n + a.raw().len()
        }
        Value::Str(s) => s.len(),
        other => {
            let _ = (
                other.as_u64(),
                other.as_i64(),
                other.as_f32(),
                other.as_bool(),
            );
            1
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    let _ = format!("{g:?}");
    let mut n = 0;
    for (k, v) in g.metadata() {
        n += walk(&v);
        assert!(same(g.get(k), Some(v)), "get finds the one value of a key");
    }
    assert_eq!(
        g.metadata().count(),
        g.n_metadata(),
        "every key is readable"
    );
    let mut bytes = 0usize;
    for t in g.tensors() {
        assert!(t.n_dims >= 1 && t.n_dims <= 4);
        assert_eq!(t.shape().len(), t.n_dims);
        assert!(t.n_elements() > 0);
        let block = t.ty.block_size() as u64;
        assert_eq!(
            t.data.len() as u64,
            t.n_elements() / block * t.ty.block_bytes() as u64
        );
        assert_eq!(g.tensor(t.name).map(|x| x.offset), Some(t.offset));
        bytes += t.data.len();
    }
    assert_eq!(
        g.tensors().count(),
        g.n_tensors(),
        "every tensor is readable"
    );
    assert!(g.data_offset() <= data.len());
    let _ = (g.architecture(), g.get_u32("general.alignment"), n, bytes);

    if let Ok(tok) = Tokenizer::from_gguf(&g) {
        let ids = tok.encode("Hello world! <|im_start|> 123", true, true);
        let _ = tok.decode(&ids, true);
        let _ = format!("{tok:?}");
    }
    if let Ok(a) = Adapter::parse(&g) {
        let _ = a.table();
    }
    let Ok(mut model) = ModelVec::load(&g) else {
        return;
    };
    // The same file as its own adapter: exercises apply_adapter's checks on hostile tensors.
    let mut table = Vec::new();
    if let Ok(a) = Adapter::parse(&g) {
        table.resize(a.n_slots, LoraDelta::EMPTY);
        let _ = model.apply_adapter(&a, 0.5, &mut table);
    }
    let n_ctx = 4;
    let Ok(plan) = edgelm::plan::plan(&model.config, n_ctx) else {
        return;
    };
    // Big but valid configs cost time, not coverage.
    if plan.total_bytes > 8 << 20 {
        return;
    }
    let mut mem = alloc_memory(&plan);
    let Ok(mut s) = Session::new(&model, &mut mem, n_ctx) else {
        return;
    };
    let n_vocab = model.config.n_vocab as u32;
    for t in [0, n_vocab - 1, n_vocab] {
        let _ = s.eval(t);
    }
});
