//! Tensor types and kernels
