//! `picolm_defaults_json`: picolm-core's parameter defaults as data, written straight from the core's `Default`
//! impls (not from the C structs), so a C program or test can compare what the `picolm_*_params_default`
//! functions write with what the core defines.

use std::ffi::CString;
use std::sync::OnceLock;

use picolm_core::bench::BenchParams;
use picolm_core::generate::GenerateParams;
use picolm_core::model::ModelParams;
use picolm_core::sampler::SamplerParams;
use picolm_core::session::SessionParams;
use serde_json::{json, Map, Value};

/// Adds the fields of sampler settings under `prefix`.
fn sampler_entries(out: &mut Map<String, Value>, prefix: &str, sp: &SamplerParams) {
    let fields = [
        ("temperature", json!(sp.temperature)),
        ("top_k", json!(sp.top_k)),
        ("top_p", json!(sp.top_p)),
        ("min_p", json!(sp.min_p)),
        ("repeat_penalty", json!(sp.repeat_penalty)),
        ("repeat_last_n", json!(sp.repeat_last_n)),
        ("seed", json!(sp.seed)),
    ];
    for (name, v) in fields {
        out.insert(format!("{prefix}.{name}"), v);
    }
}

/// The defaults as one flat JSON object with dotted keys (`"session.n_batch"`, `"generate.sampler.top_p"`).
fn defaults() -> Value {
    let mut m = Map::new();
    let model = ModelParams::default();
    m.insert("model.n_threads".into(), json!(model.n_threads));
    m.insert("model.n_ctx".into(), json!(model.n_ctx));
    m.insert("model.stream_weights".into(), json!(model.stream_weights));
    m.insert("model.stream_slab_bytes".into(), json!(model.stream_slab_bytes));
    m.insert("model.max_rss_bytes".into(), json!(model.rss_budget.map_or(0, |b| b.max_rss_bytes)));
    let session = SessionParams::default();
    m.insert("session.n_ctx".into(), json!(session.n_ctx));
    m.insert("session.n_batch".into(), json!(session.n_batch));
    m.insert("session.kv_type".into(), json!(session.kv_type.name()));
    sampler_entries(&mut m, "sampler", &SamplerParams::default());
    let generate = GenerateParams::default();
    m.insert("generate.max_tokens".into(), json!(generate.max_tokens));
    m.insert("generate.stop_at_eog".into(), json!(generate.stop_at_eog));
    sampler_entries(&mut m, "generate.sampler", &generate.sampler);
    #[cfg(feature = "agent")]
    {
        let agent = picolm_core::agent::AgentParams::default();
        m.insert("agent.max_iterations".into(), json!(agent.max_iterations));
        m.insert("agent.max_tokens".into(), json!(agent.generate.max_tokens));
        m.insert("agent.tool_choice".into(), json!(agent.tool_choice.name()));
        sampler_entries(&mut m, "agent.sampler", &agent.generate.sampler);
    }
    let bench = BenchParams::default();
    m.insert("bench.n_prompt".into(), json!(bench.n_prompt));
    m.insert("bench.n_gen".into(), json!(bench.n_gen));
    m.insert("bench.threads".into(), json!(bench.threads));
    m.insert("bench.repetitions".into(), json!(bench.repetitions));
    m.insert("bench.n_batch".into(), json!(bench.n_batch));
    m.insert("bench.stream_weights".into(), json!(bench.model.stream_weights));
    m.insert("bench.kv_type".into(), json!(bench.kv_type.name()));
    m.insert("bench.bandwidth".into(), json!(bench.bandwidth));
    Value::Object(m)
}

/// picolm-core's defaults of every parameter as a static NUL-terminated JSON object with dotted keys, e.g.
/// `{"session.n_batch":64,"session.kv_type":"f16","generate.max_tokens":256,"generate.sampler.top_p":1.0,…}`
/// (sections `model`, `session`, `sampler`, `generate`, `agent` (with the `agent` feature) and `bench`; enums as
/// their names, as `picolm_kv_type_name` and `picolm_tool_choice_name` give them). The `picolm_*_params_default`
/// functions write these values. Never NULL; do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn picolm_defaults_json() -> *const libc::c_char {
    static TEXT: OnceLock<CString> = OnceLock::new();
    TEXT.get_or_init(|| CString::new(defaults().to_string()).expect("JSON text has no NUL")).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boundary::picolm_result;
    use crate::generate::{picolm_generate_params, picolm_generate_params_default};
    use crate::session::{picolm_session_params, picolm_session_params_default, session_params};
    use std::ffi::CStr;

    fn dump() -> Value {
        // SAFETY: a static NUL-terminated string.
        serde_json::from_str(unsafe { CStr::from_ptr(picolm_defaults_json()) }.to_str().unwrap()).unwrap()
    }

    fn filled<T>(f: unsafe extern "C" fn(*mut T) -> picolm_result) -> T {
        let mut p = std::mem::MaybeUninit::uninit();
        // SAFETY: a writable struct; the function fills it on PICOLM_OK.
        unsafe {
            assert_eq!(f(p.as_mut_ptr()), picolm_result::PICOLM_OK);
            p.assume_init()
        }
    }

    #[test]
    fn the_dump_is_one_flat_object_with_every_section() {
        let d = dump();
        let o = d.as_object().unwrap();
        for key in [
            "model.n_ctx",
            "session.n_batch",
            "session.kv_type",
            "sampler.top_p",
            "generate.max_tokens",
            "bench.threads",
        ] {
            assert!(o.contains_key(key), "{key} missing from {d}");
        }
        assert_eq!(o.contains_key("agent.max_iterations"), cfg!(feature = "agent"));
    }

    #[test]
    fn the_c_session_and_generate_defaults_read_back_as_the_core_defaults() {
        let s: picolm_session_params = filled(picolm_session_params_default);
        assert_eq!(session_params(&s).unwrap(), SessionParams::default());
        let g: picolm_generate_params = filled(picolm_generate_params_default);
        let d = GenerateParams::default();
        assert_eq!(g.max_tokens as usize, d.max_tokens);
        assert_eq!(g.sampler.to_core().unwrap(), d.sampler);
        assert_eq!(!g.ignore_eog, d.stop_at_eog);
    }
}
