//! Writes `include/picolm.h` (or the path given as the first argument) from the `picolm-ffi-api` crate
//! (`picolm-ffi/api`: the functions that `picolm-ffi` links into libpicolm).

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crate_dir = root.join("picolm-ffi/api");
    let out = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| root.join("include/picolm.h"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("picolm-ffi/api/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    bindings.write_to_file(&out);
    eprintln!("wrote {}", out.display());
}
