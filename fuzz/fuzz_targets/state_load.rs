//! The KV state loader on arbitrary bytes, against the tiny synthetic model: every input is refused with a typed
//! error (leaving the session empty) or restores exactly the bytes that the same session saves back.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::GgufFile;
use picolm_core::model::ModelParams;
use picolm_core::{Model, Session, SessionParams};

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| {
        let file = GgufFile::from_bytes(tiny_llama(TinyShape::default()).to_bytes()).unwrap();
        Arc::new(Model::from_gguf(file, &ModelParams { n_ctx: 32, n_threads: 1, ..Default::default() }).unwrap())
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut s = Session::new(model(), &SessionParams { n_ctx: 32, n_batch: 8, ..Default::default() }).unwrap();
    match s.load_state(&mut &data[..]) {
        Ok(()) => {
            let mut saved = Vec::new();
            s.save_state(&mut saved).unwrap();
            assert_eq!(saved, data, "an accepted state must be exactly what the session saves back");
        }
        Err(_) => assert!(s.tokens().is_empty() && s.logits().is_none(), "a refused state left the session loaded"),
    }
});
