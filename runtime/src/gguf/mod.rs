//! GGUF reader
