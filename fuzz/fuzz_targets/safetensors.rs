//! The converter's safetensors reader on arbitrary bytes: the header check, then reading every
//! tensor it accepted (in full when small, else its first and last rows).
#![no_main]

use edgelm_converter::checkpoint::StFile;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = StFile::from_bytes(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    let names: Vec<String> = f.names().map(str::to_string).collect();
    for name in &names {
        let t = f.get(name).expect("a listed tensor is found");
        assert_eq!(t.name, name);
        if t.check_dtype().is_err() {
            continue;
        }
        let _ = t.check_shape(&[1, 2], "fuzz");
        let len = t.len();
        if len <= 1 << 16 {
            let v = t.to_vec();
            assert_eq!(v.len(), len);
        } else {
            let mut row = vec![0f32; 16];
            t.read(0, &mut row);
            t.read(len - 16, &mut row);
        }
        t.release();
    }
});
