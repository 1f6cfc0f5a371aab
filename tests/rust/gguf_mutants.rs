//! GGUF mutation campaign (issue #17.12): seeded mutations of two valid files, each loaded as a model and
//! classified. Sources: the real SmolLM2 Q4_1 header (metadata and tensor table) over a sparse file of the real
//! size whose tensor data reads as zeros (so each mutant costs no copy of the 98 MB), and the tiny synthetic model
//! written by the GGUF writer (loaded from memory, with real data). Mutations: bit flips, bytes set to random or
//! extreme values, truncations, and integer fields of the GGUF structure (counts, lengths, dimensions, types,
//! offsets, metadata integers) set to extremes.
//!
//! Classes: clean error (a typed error), accepted valid (loads and evaluates a token), crash (a panic; an abort
//! ends the test process, which fails the test just as well), hang (one load taking more than `HANG_SECS`), wrongly
//! accepted (loads although truncated, or loads but cannot evaluate). The normal test run does a small volume;
//! `PICOLM_GGUF_MUTANTS=64000` runs the full campaign. Run with `--nocapture` to see the table;
//! `PICOLM_GGUF_MUTANT_ONLY=N,M` (with the same `PICOLM_GGUF_MUTANTS`) replays single mutants with their timing.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::GgufFile;
use picolm_core::model::{Model, ModelError, ModelParams};
use picolm_core::{Session, SessionParams};
use picolm_integration_tests::model_path;

const DEFAULT_MUTANTS: usize = 2000;
/// A load slower than this is reported as a hang. An accepted real-size model costs ~0.3 s (tokenizer of 49,152
/// tokens, one token through 30 layers of zero pages) on an idle machine and over 5 s on a loaded one; an endless
/// loop never returns at all (the test runner's time limit catches that).
const HANG_SECS: u64 = 30;
/// One mutant in this many mutates the real header (each costs a full metadata and tokenizer parse, ~50x the
/// tiny model).
const REAL_SHARE: usize = 8;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// An integer field of the GGUF structure: its offset and width in bytes.
#[derive(Clone, Copy, Debug)]
struct Field {
    at: usize,
    width: usize,
}

/// Walks a valid GGUF file and lists its integer fields (at most a few elements of each array, so that the
/// 49,152-entry token list does not drown the rest), and returns where the header ends.
fn int_fields(b: &[u8]) -> (Vec<Field>, usize) {
    let mut f = Vec::new();
    let mut pos = 0usize;
    let u32_at = |p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap());
    let u64_at = |p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap()) as usize;
    let field = |f: &mut Vec<Field>, pos: &mut usize, width: usize| {
        f.push(Field { at: *pos, width });
        *pos += width;
    };
    pos += 4;
    field(&mut f, &mut pos, 4); // version
    let n_tensors = u64_at(pos);
    field(&mut f, &mut pos, 8);
    let n_kv = u64_at(pos);
    field(&mut f, &mut pos, 8);
    fn scalar_width(t: u32) -> usize {
        match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => 0,
        }
    }
    let string = |f: &mut Vec<Field>, pos: &mut usize, record: bool| {
        let len = u64_at(*pos);
        if record {
            f.push(Field { at: *pos, width: 8 });
        }
        *pos += 8 + len;
    };
    for _ in 0..n_kv {
        string(&mut f, &mut pos, true);
        let t = u32_at(pos);
        field(&mut f, &mut pos, 4);
        match t {
            8 => string(&mut f, &mut pos, true),
            9 => {
                let et = u32_at(pos);
                field(&mut f, &mut pos, 4);
                let n = u64_at(pos);
                field(&mut f, &mut pos, 8);
                for i in 0..n {
                    if et == 8 {
                        string(&mut f, &mut pos, i < 4);
                    } else if i < 4 && (et <= 5 || et == 10 || et == 11) {
                        field(&mut f, &mut pos, scalar_width(et));
                    } else {
                        pos += scalar_width(et);
                    }
                }
            }
            t if t <= 5 || t == 10 || t == 11 => field(&mut f, &mut pos, scalar_width(t)),
            t => pos += scalar_width(t),
        }
    }
    for _ in 0..n_tensors {
        string(&mut f, &mut pos, true);
        let n_dims = u32_at(pos);
        field(&mut f, &mut pos, 4);
        for _ in 0..n_dims {
            field(&mut f, &mut pos, 8);
        }
        field(&mut f, &mut pos, 4); // type
        field(&mut f, &mut pos, 8); // offset
    }
    (f, pos)
}

const EXTREMES: [u64; 10] = [0, 1, 2, 0x7f, 0xffff, 1 << 28, 0x7fff_ffff, 0xffff_ffff, i64::MAX as u64, u64::MAX];

/// One seeded mutation of `src` (whose header ends at `header_end` and integer fields are `fields`): the mutant
/// and whether it was truncated.
fn mutate(src: &[u8], fields: &[Field], header_end: usize, rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut m = src.to_vec();
    // Mostly the header: tensor data accepts any bytes.
    let pick = |rng: &mut Rng| if rng.below(10) < 8 { rng.below(header_end) } else { rng.below(src.len()) };
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(3) {
                let i = pick(rng);
                m[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            for _ in 0..1 + rng.below(3) {
                let i = pick(rng);
                m[i] = [0u8, 0xff, 0x7f, 0x80, rng.next() as u8][rng.below(5)];
            }
        }
        2 => {
            let len = if rng.below(2) == 0 { rng.below(header_end) } else { rng.below(src.len()) };
            m.truncate(len);
            return (m, true);
        }
        _ => {
            for _ in 0..1 + rng.below(2) {
                let fl = fields[rng.below(fields.len())];
                let old = {
                    let mut v = [0u8; 8];
                    v[..fl.width].copy_from_slice(&m[fl.at..fl.at + fl.width]);
                    u64::from_le_bytes(v)
                };
                let v = match rng.below(4) {
                    0 => old.wrapping_add(1),
                    1 => old.wrapping_sub(1),
                    _ => EXTREMES[rng.below(EXTREMES.len())],
                };
                m[fl.at..fl.at + fl.width].copy_from_slice(&v.to_le_bytes()[..fl.width]);
            }
        }
    }
    (m, false)
}

#[derive(Default, Debug)]
struct Tally {
    inputs: usize,
    clean_errors: usize,
    accepted_valid: usize,
    crashes: Vec<String>,
    hangs: Vec<String>,
    wrongly_accepted: Vec<String>,
    slowest: Duration,
}

impl Tally {
    fn row(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>8} {:>12} {:>14} {:>7} {:>5} {:>16}   slowest {:?}",
            self.inputs,
            self.clean_errors,
            self.accepted_valid,
            self.crashes.len(),
            self.hangs.len(),
            self.wrongly_accepted.len(),
            self.slowest
        )
    }
}

/// Loads with `load`, evaluates a token when the model loads, and classifies.
fn judge(t: &mut Tally, what: &str, truncated: bool, load: impl FnOnce() -> Result<Model, ModelError>) {
    t.inputs += 1;
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let model = Arc::new(load()?);
        let mut s = Session::new(model, &SessionParams { n_ctx: 8, n_batch: 2, ..Default::default() })
            .map_err(|e| ModelError::InvalidParameter { name: "session".into(), value: e.to_string() })?;
        Ok::<_, ModelError>(s.eval(&[0]).map_err(|e| e.to_string()))
    }));
    let took = start.elapsed();
    if std::env::var_os("PICOLM_GGUF_MUTANT_ONLY").is_some() {
        let class = match &outcome {
            Err(_) => "panic".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Ok(Ok(r)) => format!("loaded, eval {r:?}"),
        };
        println!("{what}: {took:?}: {class}");
    }
    t.slowest = t.slowest.max(took);
    if took > Duration::from_secs(HANG_SECS) {
        t.hangs.push(format!("{what}: {took:?}"));
    }
    match outcome {
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            t.crashes.push(format!("{what}: panic {}", msg.unwrap_or_default()));
        }
        Ok(Err(_)) => t.clean_errors += 1,
        Ok(Ok(Err(e))) => t.wrongly_accepted.push(format!("{what}: loads but cannot evaluate: {e}")),
        Ok(Ok(Ok(()))) if truncated => t.wrongly_accepted.push(format!("{what}: truncated file accepted")),
        Ok(Ok(Ok(()))) => t.accepted_valid += 1,
    }
}

/// `PICOLM_GGUF_MUTANT_ONLY=3,17`: judge only these mutant numbers (of each source) to replay a finding.
fn only() -> Option<Vec<usize>> {
    std::env::var("PICOLM_GGUF_MUTANT_ONLY").ok().map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

fn params() -> ModelParams {
    ModelParams { n_ctx: 16, n_threads: 1, ..Default::default() }
}

/// Mutants of the real header, written over a sparse copy of the real file's size.
fn real_campaign(n: usize, seed: u64) -> Tally {
    let path = model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    let real = GgufFile::open(&path).unwrap();
    let full_len = real.len();
    let header_len = real.data_offset() as usize;
    drop(real);
    let mut header = vec![0u8; header_len];
    File::open(&path).unwrap().read_exact_at(&mut header, 0).unwrap();
    let (fields, header_end) = int_fields(&header);
    assert!(header_end <= header_len && fields.len() > 1000, "{header_end} {header_len} {}", fields.len());
    let dir = tempfile::tempdir().unwrap();
    let file_path = dir.path().join("mutant.gguf");
    let file = File::create(&file_path).unwrap();
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    // The unmutated header over zero data loads: the baseline is valid.
    file.set_len(full_len).unwrap();
    file.write_all_at(&header, 0).unwrap();
    Model::load(&file_path, &params()).expect("the real header over zero data loads");
    let only = only();
    for i in 0..n {
        let (m, truncated) = mutate(&header, &fields, header_end, &mut rng);
        if only.as_ref().is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        file.set_len(0).unwrap();
        file.set_len(if truncated { m.len() as u64 } else { full_len }).unwrap();
        file.write_all_at(&m, 0).unwrap();
        judge(&mut t, &format!("real #{i}"), truncated, || Model::load(&file_path, &params()));
    }
    t
}

/// Mutants of the tiny synthetic model, loaded from memory.
fn synthetic_campaign(n: usize, seed: u64) -> Tally {
    let src = tiny_llama(TinyShape::default()).to_bytes();
    let data_offset = GgufFile::from_bytes(src.clone()).unwrap().data_offset() as usize;
    let (fields, header_end) = int_fields(&src);
    assert!(header_end <= data_offset);
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let only = only();
    for i in 0..n {
        let (m, truncated) = mutate(&src, &fields, header_end, &mut rng);
        if only.as_ref().is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        judge(&mut t, &format!("synthetic #{i}"), truncated, || Model::from_gguf(GgufFile::from_bytes(m)?, &params()));
    }
    t
}

fn report(rows: &[(&str, &Tally)]) {
    println!(
        "{:<28} {:>8} {:>12} {:>14} {:>7} {:>5} {:>16}",
        "source", "inputs", "clean errors", "accepted-valid", "crashes", "hangs", "wrongly accepted"
    );
    for (name, t) in rows {
        println!("{}", t.row(name));
        for x in t.crashes.iter().chain(&t.hangs).chain(&t.wrongly_accepted).take(10) {
            println!("    {x}");
        }
    }
}

#[test]
fn gguf_mutants_are_clean_errors_or_valid_models() {
    let total: usize =
        std::env::var("PICOLM_GGUF_MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MUTANTS);
    let n_real = total / REAL_SHARE;
    let real = real_campaign(n_real, 0x5eed_0001);
    let synthetic = synthetic_campaign(total - n_real, 0x5eed_0002);
    report(&[("SmolLM2 Q4_1 header (real)", &real), ("tiny synthetic model", &synthetic)]);
    for t in [&real, &synthetic] {
        assert!(t.crashes.is_empty() && t.hangs.is_empty() && t.wrongly_accepted.is_empty(), "{t:#?}");
        assert!(t.clean_errors * 3 > t.inputs, "mutations should mostly be caught: {t:?}");
    }
}

#[test]
fn the_field_walker_finds_every_tensor_field() {
    let src = tiny_llama(TinyShape::default()).to_bytes();
    let (fields, end) = int_fields(&src);
    let f = GgufFile::from_bytes(src.clone()).unwrap();
    assert!(end <= f.data_offset() as usize && end + 32 > f.data_offset() as usize);
    // The last 8-byte fields belong to the tensor table (an offset, a dimension, a name length): u64::MAX in any
    // of them is refused.
    let tensor_offsets: Vec<_> = fields.iter().rev().filter(|fl| fl.width == 8).take(3).collect();
    for fl in tensor_offsets {
        let mut m = src.clone();
        m[fl.at..fl.at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(GgufFile::from_bytes(m).is_err());
    }
}
