//! Saved session states on the real SmolLM2 model: a state is restored only into the model that wrote it, every
//! damaged variant of a real state is refused (the mutation test), and state files are written and read safely
//! (no foreign file replaced, no special file opened, no blocking on a FIFO).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use picolm_core::fs_safety::FileError;
use picolm_core::session::check_state_path;
use picolm_core::state_file::{StateError, CHECKSUM_BYTES, HEADER_BYTES};
use picolm_core::{Error, Model, ModelParams, Session, SessionParams};
use picolm_integration_tests::*;
use xxhash_rust::xxh3::xxh3_64;

const PROMPT: &str = "The lighthouse keeper climbed the stairs";

fn load(file: &str) -> Arc<Model> {
    let params = ModelParams { n_ctx: 256, n_threads: 2, ..Default::default() };
    Arc::new(Model::load(model_path(file), &params).expect("load"))
}

fn q4() -> Arc<Model> {
    load("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn session(model: &Arc<Model>, n_ctx: usize) -> Session {
    Session::new(model.clone(), &SessionParams { n_ctx, ..Default::default() }).expect("session")
}

/// A session that evaluated `PROMPT`, and its saved state.
fn saved(model: &Arc<Model>) -> (Session, Vec<u8>) {
    let mut s = session(model, 64);
    s.eval(&model.tokenizer().encode(PROMPT, true, true)).unwrap();
    let mut bytes = Vec::new();
    s.save_state(&mut bytes).unwrap();
    (s, bytes)
}

/// Recomputes the trailing checksum of a (mutated) state, so that only the field checks can refuse it.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= HEADER_BYTES + CHECKSUM_BYTES {
        let n = b.len() - CHECKSUM_BYTES;
        let sum = xxh3_64(&b[..n]);
        b[n..].copy_from_slice(&sum.to_le_bytes());
    }
    b
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A small deterministic generator (xorshift64*), so that the mutants are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn nonzero_byte(&mut self) -> u8 {
        (self.next() % 255) as u8 + 1
    }
}

#[test]
fn a_state_restores_only_into_the_model_that_saved_it() {
    let q = q4();
    let (_, state) = saved(&q);
    let mut same = session(&q, 64);
    same.load_state(&mut state.as_slice()).unwrap();
    // The F32 and F16 files of the same model have the same shape: only the fingerprint tells them apart.
    for other in ["smollm2-135m-F32.gguf", "smollm2-135m-F16.gguf"] {
        let m = load(other);
        assert_eq!(m.config().n_layer, q.config().n_layer);
        let mut s = session(&m, 64);
        let err = s.load_state(&mut state.as_slice()).unwrap_err();
        assert!(matches!(err, Error::InvalidState(StateError::OtherModel { .. })), "{other}: {err}");
        assert!(err.to_string().contains("another model"), "{err}");
        assert!(s.tokens().is_empty());
    }
    // A KV cache of another type, and a context too small for the state.
    let q8_params = SessionParams { n_ctx: 64, kv_type: picolm_core::model::KvType::Q8_0, ..Default::default() };
    let mut q8 = Session::new(q.clone(), &q8_params).unwrap();
    let err = q8.load_state(&mut state.as_slice()).unwrap_err();
    assert!(matches!(err, Error::InvalidState(StateError::KvTypeMismatch { .. })), "{err}");
    let mut small = session(&q, 4);
    assert!(matches!(small.load_state(&mut state.as_slice()), Err(Error::ContextOverflow { .. })));
    // A state of format version 1 (written by earlier builds) is recognised and refused with the reason.
    let mut v1 = b"PICOKV01".to_vec();
    v1.extend_from_slice(&[0u8; 48]);
    let err = same.load_state(&mut v1.as_slice()).unwrap_err();
    assert!(err.to_string().contains("version 01 is not supported"), "{err}");
}

/// Outcome counts of the mutation test.
#[derive(Default, Debug)]
struct Tally {
    rejected: usize,
    accepted_identical: usize,
    /// Refusals by error kind.
    by_kind: std::collections::BTreeMap<String, usize>,
}

/// The variant name of a refusal (`ChecksumMismatch`, `ContextOverflow`, ...).
fn kind(e: &Error) -> String {
    let debug = match e {
        Error::InvalidState(s) => format!("{s:?}"),
        e => format!("{e:?}"),
    };
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

/// The state a mutation test starts from: its bytes, tokens, logits, and the logits after one more token.
struct Reference {
    bytes: Vec<u8>,
    tokens: Vec<u32>,
    logits: Vec<f32>,
    next_logits: Vec<f32>,
}

/// Loads `mutant` into `s`; a refusal must leave `s` empty, an acceptance must reproduce the original logits and
/// the next token's logits exactly. A "mutant" equal to the original is not counted.
fn judge(s: &mut Session, mutant: &[u8], what: &str, reference: &Reference, t: &mut Tally) {
    if mutant == reference.bytes.as_slice() {
        return;
    }
    let probe = 42u32;
    match s.load_state(&mut &mutant[..]) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.len() > 20, "{what}: unclear error {msg:?}");
            assert!(s.tokens().is_empty() && s.logits().is_none(), "{what}: a refused state left data behind");
            t.rejected += 1;
            *t.by_kind.entry(kind(&e)).or_default() += 1;
        }
        Ok(()) => {
            assert_eq!(s.tokens(), reference.tokens.as_slice(), "{what}: accepted with other tokens");
            assert_eq!(s.logits(), Some(reference.logits.as_slice()), "{what}: accepted with other logits");
            s.eval(&[probe]).unwrap();
            let next = reference.next_logits.as_slice();
            assert_eq!(s.logits().unwrap(), next, "{what}: accepted with other keys/values");
            t.accepted_identical += 1;
        }
    }
}

#[test]
fn every_mutant_of_a_real_state_is_refused() {
    let q = q4();
    let (mut original, state) = saved(&q);
    let tokens = original.tokens().to_vec();
    let logits = original.logits().unwrap().to_vec();
    original.eval(&[42]).unwrap();
    let next_logits = original.logits().unwrap().to_vec();
    let reference = Reference { bytes: state.clone(), tokens: tokens.clone(), logits, next_logits };
    let mut s = session(&q, 64);
    s.load_state(&mut state.as_slice()).expect("the unmodified state loads");
    let mut t = Tally::default();
    let len = state.len();
    let n = tokens.len() as u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let random_mutants: usize = std::env::var("PICOLM_STATE_MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2500);

    // 1. Every header byte, each bit flipped, and random byte values.
    for at in 0..HEADER_BYTES {
        for bit in 0..8 {
            let mut m = state.clone();
            m[at] ^= 1 << bit;
            judge(&mut s, &m, &format!("header byte {at} bit {bit}"), &reference, &mut t);
        }
        let mut m = state.clone();
        m[at] ^= rng.nonzero_byte();
        judge(&mut s, &m, &format!("header byte {at} random"), &reference, &mut t);
    }
    // 2. Random single-byte changes anywhere (tokens, keys, values, logits, checksum).
    for _ in 0..random_mutants {
        let at = rng.below(len);
        let mut m = state.clone();
        m[at] ^= rng.nonzero_byte();
        judge(&mut s, &m, &format!("byte {at}"), &reference, &mut t);
    }
    // 3. Truncations: every short length, random lengths, and the last few bytes.
    let mut cuts: Vec<usize> = (0..=HEADER_BYTES + 16).collect();
    cuts.extend((0..200).map(|_| rng.below(len)));
    cuts.extend(len - 16..len);
    for cut in cuts {
        judge(&mut s, &state[..cut], &format!("truncated to {cut}"), &reference, &mut t);
    }
    // 4. Extensions: zeros, random bytes, and a whole second copy.
    for extra in 1..=16 {
        let mut m = state.clone();
        m.extend(std::iter::repeat_n(0u8, extra));
        judge(&mut s, &m, &format!("{extra} zero bytes appended"), &reference, &mut t);
        let mut m = state.clone();
        m.extend((0..extra).map(|_| rng.nonzero_byte()));
        judge(&mut s, &m, &format!("{extra} random bytes appended"), &reference, &mut t);
    }
    judge(&mut s, &[state.clone(), state.clone()].concat(), "state twice", &reference, &mut t);
    // 5. Field changes with a valid checksum: only the field checks stand between them and the cache.
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for v in [0, n - 1, n - 2, n + 1, 64, 65, u32::MAX as u64, u64::MAX] {
        let mut m = state.clone();
        put_u64(&mut m, 48, v);
        fields.push((format!("n_tokens {v}"), m.clone()));
        // The token count lowered with a matching payload length: the rows would sit at wrong offsets.
        let row = 384u64;
        let payload = v.saturating_mul(4 + 2 * 30 * row).saturating_add(49152 * 4);
        put_u64(&mut m, 60, payload);
        fields.push((format!("n_tokens {v} with payload {payload}"), m));
    }
    for (name, at, vals) in [
        ("kv type", 32, vec![0u32, 8, 2, 999]),
        ("layers", 36, vec![29, 31, 0]),
        ("row width", 40, vec![191, 193, 576]),
        ("vocabulary", 44, vec![49151, 49153]),
        ("flags", 56, (0..32).map(|b| 1u32 << b).chain([0, u32::MAX]).collect()),
    ] {
        for v in vals {
            let mut m = state.clone();
            put_u32(&mut m, at, v);
            fields.push((format!("{name} {v}"), m));
        }
    }
    let declared = u64::from_le_bytes(state[60..68].try_into().unwrap());
    for d in [0, 1, declared - 1, declared + 1, declared - 384, declared + 4, u64::MAX] {
        let mut m = state.clone();
        put_u64(&mut m, 60, d);
        fields.push((format!("payload length {d}"), m));
    }
    for at in 8..32 {
        let mut m = state.clone();
        m[at] ^= 0x01;
        fields.push((format!("fingerprint byte {at}"), m));
    }
    for magic in [b"PICOKV01", b"PICOKV03", b"XICOKV02", b"GGUF\x03\0\0\0"] {
        let mut m = state.clone();
        m[..8].copy_from_slice(magic);
        fields.push((format!("magic {magic:?}"), m));
    }
    for (i, id) in [(0usize, 49152u32), (n as usize - 1, u32::MAX)] {
        let mut m = state.clone();
        put_u32(&mut m, HEADER_BYTES + 4 * i, id);
        fields.push((format!("token {i} = {id}"), m));
    }
    let mut trailing = state.clone();
    trailing.extend_from_slice(&[0u8; 8]);
    fields.push(("8 bytes appended, resealed at the new end".into(), trailing));
    for (what, m) in fields {
        judge(&mut s, &reseal(m), &format!("resealed {what}"), &reference, &mut t);
    }
    // 6. A state of the same shape from another file of the model.
    let (_, f32_state) = saved(&load("smollm2-135m-F32.gguf"));
    judge(&mut s, &f32_state, "state of the F32 model", &reference, &mut t);

    let total = t.rejected + t.accepted_identical;
    eprintln!("state mutation test: {total} mutants of a {len}-byte state: {t:?}");
    assert!(total >= 3000, "only {total} mutants");
    assert_eq!(t.accepted_identical, 0, "with a checksum no mutant should load");
}

#[test]
fn state_files_never_replace_foreign_files() {
    let q = q4();
    let (s, _) = saved(&q);
    let dir = tempfile::tempdir().unwrap();
    // A file that looks like a model: refused, untouched.
    let model_like = dir.path().join("model.gguf");
    let content = b"GGUF\x03\x00\x00\x00 weights that must survive".to_vec();
    std::fs::write(&model_like, &content).unwrap();
    let err = s.save_state_file(&model_like).unwrap_err();
    assert!(matches!(err, Error::File(FileError::Refused { .. })), "{err}");
    assert!(err.to_string().contains("47 47 55 46 03 00 00 00 |GGUF....|"), "{err}");
    assert!(check_state_path(&model_like).is_err());
    assert_eq!(std::fs::read(&model_like).unwrap(), content);
    // The load message shows the magic bytes the same way.
    let mut r = session(&q, 64);
    let err = r.load_state_file(&model_like).unwrap_err();
    assert!(err.to_string().contains("47 47 55 46 03 00 00 00 |GGUF....|"), "{err}");

    // New path, then replacing its own state; an older-version state may be replaced too.
    let p = dir.path().join("cache.state");
    check_state_path(&p).unwrap();
    s.save_state_file(&p).unwrap();
    check_state_path(&p).unwrap();
    s.save_state_file(&p).unwrap();
    r.load_state_file(&p).unwrap();
    assert_eq!(r.tokens(), s.tokens());
    let old = dir.path().join("old.state");
    std::fs::write(&old, b"PICOKV01 and an old payload").unwrap();
    s.save_state_file(&old).unwrap();
    r.load_state_file(&old).unwrap();
    let is_tmp = |e: &std::fs::DirEntry| e.path().extension().is_some_and(|x| x == "tmp");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().filter(is_tmp).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().expect("mkfifo runs").success());
}

/// Runs `f` on another thread; the test fails (instead of hanging) if it takes more than 60 s.
fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the call blocked on a special file")
}

#[test]
fn fifos_are_refused_without_blocking_as_model_and_as_state() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.clone();
    let err = within_deadline(move || Model::load(&f, &ModelParams::default()).unwrap_err());
    assert!(err.to_string().contains("FIFO"), "{err}");
    let q = q4();
    let f = fifo.clone();
    let (err_load, err_save) = within_deadline(move || {
        let (mut s, _) = saved(&q);
        let load = s.load_state_file(&f).unwrap_err();
        let (s, _) = saved(&q);
        (load, s.save_state_file(&f).unwrap_err())
    });
    assert!(matches!(err_load, Error::File(FileError::NotRegular { .. })), "{err_load}");
    assert!(matches!(err_save, Error::File(FileError::NotRegular { .. })), "{err_save}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO must stay a FIFO");
}
