//! What can go wrong while converting, each case naming the file and tensor involved.

use std::path::PathBuf;

/// A conversion error: the message names the file and, where there is one, the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A file the checkpoint needs is not there.
    #[error("{path}: missing ({what})")]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// Why it is needed.
        what: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or lacks a field.
    #[error("{path}: {msg}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A safetensors file is malformed.
    #[error("{path}: not a valid safetensors file: {msg}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// The architecture is not one the converter knows.
    #[error("{path}: architecture {arch:?} is not supported (supported: {supported})")]
    UnsupportedArch {
        /// config.json.
        path: PathBuf,
        /// What config.json names.
        arch: String,
        /// The supported list.
        supported: &'static str,
    },
    /// A tensor the architecture needs is absent from every shard.
    #[error("tensor {tensor}: not found in {path}")]
    MissingTensor {
        /// Hugging Face name.
        tensor: String,
        /// The checkpoint folder or adapter file.
        path: PathBuf,
    },
    /// A tensor's shape disagrees with config.json (or an adapter with its base).
    #[error("{path}: tensor {tensor} has shape {found:?}, expected {expected:?} ({why})")]
    Shape {
        /// The file holding the tensor.
        path: PathBuf,
        /// Its name.
        tensor: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape expected.
        expected: Vec<usize>,
        /// Where the expectation comes from.
        why: &'static str,
    },
    /// A tensor is stored in a dtype the converter does not read.
    #[error("{path}: tensor {tensor} has dtype {dtype}, supported: F32, F16, BF16")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// A weight holds NaN or infinity (after merging any LoRA).
    #[error("{path}: tensor {tensor} holds a non-finite value ({value}) at element {index}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Flat index of the first bad element.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The output exists and `--force` was not given.
    #[error("{path}: already exists (use --force to overwrite)")]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// A configuration value is missing, out of range or unsupported.
    #[error("{path}: {msg}")]
    Config {
        /// The file the value comes from.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The tokenizer files cannot be converted.
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The LoRA adapter does not fit the base model.
    #[error("{path}: LoRA adapter: {msg}")]
    Adapter {
        /// The adapter file or folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The quantization type is unknown.
    #[error("unknown quantization type {0:?} (supported: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, q4_k_m)")]
    Quant(String),
    /// The layout target is unknown.
    #[error("unknown layout {0:?} (targets: none, x86-avx2, x86-avx512, arm-neon, arm-dotprod, arm-i8mm)")]
    Layout(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ConvertError>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConvertError {
    let path = path.into();
    move |source| ConvertError::Io { path, source }
}
