//! The committed `include/edgelm.h` is what cbindgen makes of `src/lib.rs` today.
//! `EDGELM_BLESS=1 cargo test -p edgelm-c --test header` rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen reads src/lib.rs");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/edgelm.h");
    if std::env::var_os("EDGELM_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is out of date with src/lib.rs: run EDGELM_BLESS=1 cargo test -p edgelm-c --test header",
        path.display()
    );
}
