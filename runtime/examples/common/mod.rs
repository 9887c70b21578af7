//! What the kernel examples share: the weight type from the command line and reproducible values.

use edgelm::quant::GgmlType;

/// The weight type named by the first argument (`q4_0` when there is none); exits on others.
pub fn weight_type(args: &[String]) -> GgmlType {
    match args.first().map(String::as_str) {
        Some("q4_1") => GgmlType::Q4_1,
        Some("q8_0") => GgmlType::Q8_0,
        Some("q4_0") | None => GgmlType::Q4_0,
        Some(other) => {
            eprintln!("unknown type {other}: q4_0, q4_1 or q8_0");
            std::process::exit(2);
        }
    }
}

/// A xorshift stream of values in [-1, 1): the same matrices on every run.
pub fn values() -> impl FnMut() -> f32 {
    let mut state = 0x1234_5678u64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2000) as f32 / 1000.0 - 1.0
    }
}
