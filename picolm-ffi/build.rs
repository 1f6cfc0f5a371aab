//! Gives libpicolm.so its soname.
//!
//! Which symbols the library exports is rustc's job: for a cdylib it passes the linker its own (anonymous) version
//! script that exports exactly the crate's `#[no_mangle] extern "C"` functions, i.e. the `picolm_*` C API, and
//! hides everything else. A second, named version script from here would be rejected by GNU ld ("anonymous version
//! tag cannot be combined with other version tags"), the linker of Raspberry Pi OS and of Rust before 1.90 on x86;
//! only rust-lld accepted the pair. `scripts/test-arm.sh` checks the exported symbols and the soname of the
//! libraries it links with GNU ld.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpicolm.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
