//! Gives libpicolm.so its soname and exports only the `picolm_*` symbols (version script).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpicolm.so.0");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/picolm.map");
    }
    println!("cargo:rerun-if-changed=picolm.map");
}
