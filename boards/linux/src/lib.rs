//! The parts of the `edgelm` command that other crates (the fuzz targets) call directly.

pub mod template;
