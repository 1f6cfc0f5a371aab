//! Shared helpers of the end-to-end tests: where the fetched models and the reference data live.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The folder with the fetched models (`$PICOLM_MODELS` or `<workspace>/models`).
pub fn models_dir() -> PathBuf {
    std::env::var_os("PICOLM_MODELS").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("models"))
}

/// A fetched model file; panics with the fix when it is missing.
pub fn model_path(file: &str) -> PathBuf {
    let p = models_dir().join(file);
    assert!(p.is_file(), "model file {} is missing: run scripts/fetch-models.sh first", p.display());
    p
}

/// The read-only shared reference folder (`$PICOLM_SHARED` or `<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("PICOLM_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("../shared"))
}

/// Parses a JSON file of the shared folder.
pub fn shared_json(rel: &str) -> serde_json::Value {
    let p = shared_dir().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", p.display()))
}

/// The model file of a golden result key (`smollm2-135m-F32`, `original-Q4_1`, ...).
pub fn golden_model_file(key: &str) -> String {
    let g = shared_json("golden/smollm2-greedy.json");
    g["meta"]["model_paths"][key].as_str().unwrap_or_else(|| panic!("no model path for {key}")).to_string()
}

/// Reads a JSON array of integers.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("integer") as u32).collect()
}
