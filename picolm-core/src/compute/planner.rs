//! The decode kernel planner: at model load, for each weight format the model's matrices use, time every decode
//! kernel this CPU can run on real rows of the model for a few milliseconds and keep the fastest (as FFTW's
//! planner does), instead of trusting a table of CPU models.
//!
//! Decode (one token) streams every weight once per token and is bound by memory bandwidth; prefill (many
//! tokens) is bound by arithmetic. So decode may pick a different kernel than prefill's tile kernel. The results
//! then differ from batched prefill in the last bits (same integer products, other float summation order); a
//! plan that forces the prefill kernel for decode ([`KernelChoice::Tile`], `PICOLM_KERNEL=tile`) makes batched
//! prefill and token-by-token decode bit-identical, which the tests check.

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::compute::matmul::PreparedToken;
use crate::compute::ComputePool;
use crate::ggml_type::GgmlType;
use crate::gguf::GgufFile;
use crate::model::weights::{LlamaWeights, MatrixRef};
use crate::simd::{self, DecodeKernel, DECODE_KERNEL_NAMES};

/// Wall-clock budget of the measurements of one plan (the load-time cost; formats left when it runs out get
/// their default kernel unmeasured).
pub const PLAN_BUDGET: Duration = Duration::from_millis(40);

/// Weight bytes timed per candidate and pass: larger than the L2 caches, small enough for the budget.
const SAMPLE_BYTES: usize = 4 << 20;

/// Timed passes over the sample per candidate (interleaved across candidates; the fastest pass counts).
const ROUNDS: usize = 3;

/// The environment variable that forces a decode kernel (read when [`crate::ModelParams::kernel`] is `None`).
pub const KERNEL_ENV: &str = "PICOLM_KERNEL";

/// A kernel choice that names no kernel.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unknown decode kernel {name:?} (from {source_name}); known kernels: auto, tile, {}", DECODE_KERNEL_NAMES.join(", "))]
pub struct UnknownKernel {
    /// The name given.
    pub name: String,
    /// Where it came from (`PICOLM_KERNEL` or `ModelParams::kernel`).
    pub source_name: &'static str,
}

/// What the caller asks of the planner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// Measure and keep the fastest kernel per format.
    Auto,
    /// Decode with the prefill kernel of each format (batched prefill and decode are then bit-identical).
    Tile,
    /// Decode with the named kernel wherever this CPU has it for the format; other formats are planned as `Auto`.
    Named(&'static str),
}

impl KernelChoice {
    /// Parses `auto`, `tile` or a kernel name of [`DECODE_KERNEL_NAMES`]; `source_name` tells the error where the
    /// name came from.
    pub fn parse(name: &str, source_name: &'static str) -> Result<KernelChoice, UnknownKernel> {
        match name.trim() {
            "" | "auto" => Ok(KernelChoice::Auto),
            "tile" => Ok(KernelChoice::Tile),
            n => DECODE_KERNEL_NAMES
                .iter()
                .find(|k| **k == n)
                .map(|k| KernelChoice::Named(k))
                .ok_or_else(|| UnknownKernel { name: name.to_string(), source_name }),
        }
    }

    /// The choice of a model load: `requested` (from `ModelParams::kernel`) if given, else `PICOLM_KERNEL`, else
    /// `Auto`.
    pub fn resolve(requested: Option<&str>) -> Result<KernelChoice, UnknownKernel> {
        match requested {
            Some(n) => KernelChoice::parse(n, "ModelParams::kernel"),
            None => match std::env::var(KERNEL_ENV) {
                Ok(v) => KernelChoice::parse(&v, KERNEL_ENV),
                Err(std::env::VarError::NotPresent) => Ok(KernelChoice::Auto),
                Err(std::env::VarError::NotUnicode(v)) => {
                    Err(UnknownKernel { name: v.to_string_lossy().into_owned(), source_name: KERNEL_ENV })
                }
            },
        }
    }
}

/// How a format's decode kernel was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// Fastest of the timed candidates.
    Measured,
    /// The only kernel this CPU has for the format.
    Only,
    /// Forced by name (`PICOLM_KERNEL` / `ModelParams::kernel`).
    Forced,
    /// Forced to the prefill kernel (`tile`).
    Prefill,
    /// The measuring budget ran out before this format: its default kernel, unmeasured.
    Unmeasured,
}

/// The decode kernel of one weight format.
#[derive(Clone, Debug)]
pub struct PlanEntry {
    /// The weight format.
    pub ty: GgmlType,
    /// The kernel decode uses.
    pub kernel: DecodeKernel,
    /// The kernel prefill (batches) uses.
    pub prefill: &'static str,
    /// How `kernel` was chosen.
    pub source: PlanSource,
    /// Each timed candidate and its best pass in GB/s of weights (empty unless measured).
    pub timings: Vec<(&'static str, f64)>,
}

/// The decode kernel chosen for each weight format of a model's matrices.
#[derive(Clone, Debug, Default)]
pub struct KernelPlan {
    entries: Vec<PlanEntry>,
    elapsed: Duration,
}

impl KernelPlan {
    /// A plan without entries: every format decodes with its prefill kernel.
    pub fn prefill_only() -> KernelPlan {
        KernelPlan::default()
    }

    /// The decode kernel for `ty` (`None`: no entry, decode uses the prefill kernel).
    pub fn decode(&self, ty: GgmlType) -> Option<&DecodeKernel> {
        self.entries.iter().find(|e| e.ty == ty).map(|e| &e.kernel)
    }

    /// One entry per weight format of the model's matrices, largest share of the weights first.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    /// Time the planning took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Whether decode uses the prefill kernel for every format (batched prefill equals token-by-token decode bit
    /// for bit).
    pub fn decode_is_prefill(&self) -> bool {
        self.entries.iter().all(|e| e.kernel.name == e.prefill)
    }

    /// One line per format: `Q4_K: decode avx2-gemv (measured: avx2-gemv 14.1 GB/s, ...), prefill avx512vnni-rows8`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            let how = match e.source {
                PlanSource::Measured => {
                    let t: Vec<String> = e.timings.iter().map(|(n, g)| format!("{n} {g:.1} GB/s")).collect();
                    format!("measured: {}", t.join(", "))
                }
                PlanSource::Only => "only kernel".into(),
                PlanSource::Forced => format!("forced by {KERNEL_ENV}"),
                PlanSource::Prefill => format!("{KERNEL_ENV}=tile"),
                PlanSource::Unmeasured => "default, planning budget spent".into(),
            };
            s += &format!("{}: decode {} ({how}), prefill {}\n", e.ty, e.kernel.name, e.prefill);
        }
        s
    }

    /// Plans the decode kernels of the model's matrices (see the module documentation); runs the timings on
    /// `pool`'s threads.
    pub fn build(file: &GgufFile, weights: &LlamaWeights, pool: &ComputePool, choice: &KernelChoice) -> KernelPlan {
        let start = Instant::now();
        let mut mats: Vec<&MatrixRef> = weights.layers.iter().flat_map(|l| l.matrices()).collect();
        mats.push(&weights.output);
        // Formats by their share of the weights, largest first: the budget goes where decode time goes.
        let mut types: Vec<(GgmlType, usize)> = Vec::new();
        for m in &mats {
            match types.iter_mut().find(|(t, _)| *t == m.ty) {
                Some((_, bytes)) => *bytes += m.n_bytes(),
                None => types.push((m.ty, m.n_bytes())),
            }
        }
        types.sort_by(|a, b| b.1.cmp(&a.1));
        let mut entries = Vec::new();
        for (ty, _) in types {
            let candidates = simd::decode_kernel_candidates(ty);
            let prefill = candidates[0];
            let entry = |kernel, source, timings| PlanEntry { ty, kernel, prefill: prefill.name, source, timings };
            let forced = match choice {
                KernelChoice::Named(n) => candidates.iter().find(|k| k.name == *n).copied(),
                _ => None,
            };
            entries.push(match (choice, forced) {
                (KernelChoice::Tile, _) => entry(prefill, PlanSource::Prefill, Vec::new()),
                (_, Some(k)) => entry(k, PlanSource::Forced, Vec::new()),
                _ if candidates.len() == 1 => entry(prefill, PlanSource::Only, Vec::new()),
                _ if start.elapsed() >= PLAN_BUDGET => entry(default_kernel(&candidates), PlanSource::Unmeasured, Vec::new()),
                _ => {
                    let sample: Vec<&MatrixRef> = mats.iter().copied().filter(|m| m.ty == ty).collect();
                    let timings = pool.run(|| measure(file, &sample, &candidates, start + PLAN_BUDGET));
                    let best = timings.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(i, _)| i);
                    match best {
                        Some(i) => entry(candidates[i], PlanSource::Measured, timings),
                        None => entry(default_kernel(&candidates), PlanSource::Unmeasured, Vec::new()),
                    }
                }
            });
        }
        KernelPlan { entries, elapsed: start.elapsed() }
    }
}

/// The kernel of a format left unmeasured: the first matrix-vector kernel (shaped for decode), else the prefill
/// kernel.
fn default_kernel(candidates: &[DecodeKernel]) -> DecodeKernel {
    candidates.iter().find(|k| matches!(k.run, simd::DecodeFn::Gemv(_))).copied().unwrap_or(candidates[0])
}

/// Times each candidate on up to [`SAMPLE_BYTES`] of rows of `mats` (all of one format) with a deterministic
/// activation row, [`ROUNDS`] interleaved passes after one untimed pass that pages the rows in; returns each
/// candidate's best pass in GB/s of weights, or nothing when `deadline` passed before one full round.
fn measure(file: &GgufFile, mats: &[&MatrixRef], candidates: &[DecodeKernel], deadline: Instant) -> Vec<(&'static str, f64)> {
    // (matrix, rows taken) until the sample is full.
    let mut parts: Vec<(&MatrixRef, usize)> = Vec::new();
    let mut bytes = 0;
    for m in mats {
        if bytes >= SAMPLE_BYTES {
            break;
        }
        let rows = ((SAMPLE_BYTES - bytes) / m.row_bytes.max(1)).clamp(1, m.rows);
        parts.push((m, rows));
        bytes += rows * m.row_bytes;
    }
    let ty = mats[0].ty;
    let mut tokens: Vec<(usize, PreparedToken)> = Vec::new();
    for (m, _) in &parts {
        if !tokens.iter().any(|(c, _)| *c == m.cols) {
            tokens.push((m.cols, PreparedToken::new(ty, &activations(m.cols))));
        }
    }
    let mut out = vec![0f32; parts.iter().map(|(_, r)| *r).max().unwrap_or(0)];
    let mut pass = |k: &DecodeKernel| {
        let t0 = Instant::now();
        for (m, rows) in &parts {
            let x = &tokens.iter().find(|(c, _)| *c == m.cols).expect("prepared above").1;
            x.decode(k.run, m.cols, m.row_bytes, &m.bytes(file)[..rows * m.row_bytes], &mut out[..*rows]);
        }
        t0.elapsed().as_secs_f64()
    };
    pass(&candidates[0]);
    let mut best = vec![f64::INFINITY; candidates.len()];
    for round in 0..ROUNDS {
        if round > 0 && Instant::now() >= deadline {
            break;
        }
        for (k, b) in candidates.iter().zip(best.iter_mut()) {
            *b = b.min(pass(k));
        }
        if round == 0 && Instant::now() >= deadline + PLAN_BUDGET / 2 {
            // Far over budget (a cold page cache): the numbers are page-fault times, not kernel speeds.
            return Vec::new();
        }
    }
    candidates.iter().zip(best).map(|(k, s)| (k.name, bytes as f64 / s.max(1e-9) / 1e9)).collect()
}

/// Deterministic activations in [-1, 1) with a few larger values (as hidden states have).
fn activations(n: usize) -> Vec<f32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 61 == 7 { u * 8.0 } else { u }
        })
        .collect()
}
