//! The GGUF reader and the model loader on arbitrary bytes: every input is a typed error or a model whose
//! tensors all lie in the file; nothing panics, aborts, hangs or allocates beyond what the file can hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolm_core::gguf::GgufFile;
use picolm_core::model::{Model, ModelParams};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else { return };
    for t in file.tensors() {
        assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes, "tensor {} outside the file", t.name);
    }
    let params = ModelParams { n_ctx: 16, n_threads: 1, ..Default::default() };
    if let Ok(model) = Model::from_gguf(file, &params) {
        // A loaded model must also evaluate: one token through every layer.
        let model = std::sync::Arc::new(model);
        let sp = picolm_core::SessionParams { n_ctx: 16, n_batch: 4, ..Default::default() };
        if let Ok(mut s) = picolm_core::Session::new(model, &sp) {
            let _ = s.eval(&[0]);
        }
    }
});
