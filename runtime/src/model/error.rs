//! Errors found while turning a GGUF file into a model.

use crate::gguf::Name;
use crate::quant::GgmlType;
use core::fmt;

/// Why a model could not be loaded from a (well-formed) GGUF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// `general.architecture` names an architecture this runtime does not run.
    UnknownArchitecture(Name),
    /// `general.architecture` is missing.
    NoArchitecture,
    /// A required metadata key is missing or has the wrong type.
    MissingKey(Name),
    /// A hyper-parameter is out of range or inconsistent.
    BadConfig {
        /// Which value.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A required tensor is missing.
    MissingTensor(Name),
    /// A tensor has a different shape than the config implies.
    BadShape {
        /// The tensor.
        tensor: Name,
        /// Expected dims, innermost first (0 = unused).
        expected: [u64; 2],
        /// Dims found.
        got: [u64; 4],
    },
    /// A tensor's element type cannot be computed with.
    UnsupportedType {
        /// The tensor.
        tensor: Name,
        /// Its type.
        ty: GgmlType,
    },
    /// `edgelm.activation_function` names an activation this architecture cannot use.
    UnknownActivation(Name),
    /// The caller's layer table has the wrong length.
    LayerTable {
        /// Layers in the model.
        expected: usize,
        /// Entries provided.
        got: usize,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ModelError::*;
        match self {
            UnknownArchitecture(a) => write!(
                f,
                "unknown architecture '{a}' (supported: {})",
                super::Arch::SUPPORTED
            ),
            NoArchitecture => write!(f, "the file has no general.architecture key"),
            MissingKey(k) => write!(f, "missing or mistyped metadata key '{k}'"),
            BadConfig { what, value } => write!(f, "invalid model config: {what} = {value}"),
            MissingTensor(t) => write!(f, "missing tensor '{t}'"),
            BadShape {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor '{tensor}' has shape {:?}, expected {:?}",
                &got[..],
                &expected[..]
            ),
            UnsupportedType { tensor, ty } => {
                write!(
                    f,
                    "tensor '{tensor}' has type {} which cannot be computed",
                    ty.name()
                )
            }
            UnknownActivation(a) => write!(
                f,
                "unknown activation function '{a}' in {} (supported: {})",
                super::config::ACTIVATION_KEY,
                super::Activation::SUPPORTED_GELU
            ),
            LayerTable { expected, got } => {
                write!(
                    f,
                    "layer table holds {got} entries, the model has {expected} layers"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ModelError {}
