//! The decode kernel planner: at model load, for each weight format the model's matrices use, time every decode
//! kernel this CPU can run on real rows of the model for a few milliseconds and keep the fastest (as FFTW's
//! planner does), instead of trusting a table of CPU models.
//!
//! Decode (one token) streams every weight once per token and is bound by memory bandwidth; prefill (many
//! tokens) is bound by arithmetic. So decode may pick a different kernel than prefill's tile kernel, shaped for
//! bandwidth. A generation must not depend on the state of the cache (a prompt after a cached prefix evaluates its
//! last tokens alone, with the decode kernel) nor on a timing (two loads may time two kernels the other way
//! round): so `auto`, the default, only chooses among the kernels declared bit-identical to the format's prefill
//! kernel ([`DecodeKernel::matches_prefill`], checked by `simd::tests`). Kernels with other rounding can be forced
//! by name (`PICOLM_KERNEL=NAME`); `tile` forces the prefill kernel itself.

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::compute::matmul::PreparedToken;
use crate::compute::pool::Parallel;
use crate::compute::{ComputePool, MatrixRef};
use crate::ggml_type::GgmlType;
use crate::gguf::GgufFile;
use crate::simd::{self, DecodeKernel, DECODE_KERNEL_NAMES};

/// Wall-clock budget of the measurements of one plan (the load-time cost; formats left when it runs out get
/// their default kernel unmeasured).
pub const PLAN_BUDGET: Duration = Duration::from_millis(40);

/// Weight bytes timed per candidate and pass: larger than the L2 caches, small enough for the budget.
const SAMPLE_BYTES: usize = 2 << 20;

/// Timed passes over the sample per candidate (interleaved across candidates; the fastest pass counts).
const ROUNDS: usize = 3;

/// How much slower than the fastest candidate a matrix-vector kernel may time and still be chosen (see [`choose`]).
const GEMV_TIE: f64 = 0.05;

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
    /// Measure the kernels bit-identical to the prefill kernel and keep the fastest per format (the default).
    Auto,
    /// Decode with the prefill kernel of each format (batched prefill and decode are then bit-identical).
    Tile,
    /// Decode with the named kernel wherever this CPU has it for the format, even one that rounds otherwise than the
    /// prefill kernel; other formats are planned as `Auto`.
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
                // Default: the fastest of the kernels bit-identical to the prefill kernel (see the module
                // documentation).
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
    /// The only kernel of the format bit-identical to its prefill kernel on this CPU.
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

    /// Whether decode uses, for every format, a kernel bit-identical to the prefill kernel (batched prefill then
    /// equals token-by-token decode bit for bit, and a cached prompt prefix changes no result).
    pub fn decode_matches_prefill(&self) -> bool {
        self.entries.iter().all(|e| e.kernel.matches_prefill)
    }

    /// One line per format, e.g.
    /// `Q4_K: decode avx2-gemv (measured: avx2-row 18.8 GB/s, avx2-gemv 24.6 GB/s), prefill avx2-row`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            let how = match e.source {
                PlanSource::Measured => {
                    let t: Vec<String> = e.timings.iter().map(|(n, g)| format!("{n} {g:.1} GB/s")).collect();
                    format!("measured: {}", t.join(", "))
                }
                PlanSource::Only => "the only kernel bit-identical to prefill".into(),
                PlanSource::Forced if !e.kernel.matches_prefill => {
                    format!("forced by {KERNEL_ENV}; rounds otherwise than prefill")
                }
                PlanSource::Forced => format!("forced by {KERNEL_ENV}"),
                PlanSource::Prefill => format!("{KERNEL_ENV}=tile"),
                PlanSource::Unmeasured => "default, planning budget spent".into(),
            };
            s += &format!("{}: decode {} ({how}), prefill {}\n", e.ty, e.kernel.name, e.prefill);
        }
        s
    }

    /// Plans the decode kernels of `mats`, the matrices a model's matmuls read from `file` (see the module
    /// documentation); runs the timings on `pool`'s threads.
    pub fn build(file: &GgufFile, mats: &[&MatrixRef], pool: &ComputePool, choice: &KernelChoice) -> KernelPlan {
        let start = Instant::now();
        // Formats by their share of the weights, largest first: the budget goes where decode time goes.
        let mut types: Vec<(GgmlType, usize)> = Vec::new();
        for m in mats {
            match types.iter_mut().find(|(t, _)| *t == m.ty) {
                Some((_, bytes)) => *bytes += m.n_bytes(),
                None => types.push((m.ty, m.n_bytes())),
            }
        }
        types.sort_by_key(|t| std::cmp::Reverse(t.1));
        let mut entries = Vec::new();
        for (ty, _) in types {
            let all = simd::decode_kernel_candidates(ty);
            let prefill = all[0];
            // `auto` chooses among the kernels bit-identical to the prefill kernel only (the prefill kernel is one).
            let candidates: Vec<DecodeKernel> = all.iter().filter(|k| k.matches_prefill).copied().collect();
            let entry = |kernel, source, timings| PlanEntry { ty, kernel, prefill: prefill.name, source, timings };
            let forced = match choice {
                KernelChoice::Named(n) => all.iter().find(|k| k.name == *n).copied(),
                _ => None,
            };
            entries.push(match (choice, forced) {
                (KernelChoice::Tile, _) => entry(prefill, PlanSource::Prefill, Vec::new()),
                (_, Some(k)) => entry(k, PlanSource::Forced, Vec::new()),
                _ if candidates.len() == 1 => entry(prefill, PlanSource::Only, Vec::new()),
                _ if start.elapsed() >= PLAN_BUDGET => {
                    entry(default_kernel(&candidates), PlanSource::Unmeasured, Vec::new())
                }
                _ => {
                    let sample: Vec<&MatrixRef> = mats.iter().copied().filter(|m| m.ty == ty).collect();
                    let timings = pool.run(|par| measure(par, file, &sample, &candidates, start + PLAN_BUDGET));
                    match choose(&candidates, &timings) {
                        Some(i) => entry(candidates[i], PlanSource::Measured, timings),
                        None => entry(default_kernel(&candidates), PlanSource::Unmeasured, Vec::new()),
                    }
                }
            });
        }
        KernelPlan { entries, elapsed: start.elapsed() }
    }
}

/// The index of the kernel to decode with among `candidates`, given their `timings` (GB/s, in the same order;
/// `None` when there are none): the fastest, unless a matrix-vector kernel (shaped for decode) timed within
/// [`GEMV_TIE`] of it. Timings are only ever slowed by noise (another process on the core, an interrupt), and on a
/// busy machine every pass of every candidate may be: two candidates that time within a few percent are then a
/// toss-up, which the kernel built for decode wins (on an idle machine it is the faster one by far or a near tie).
fn choose(candidates: &[DecodeKernel], timings: &[(&'static str, f64)]) -> Option<usize> {
    let (best, fastest) =
        timings.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(i, (_, g))| (i, *g))?;
    let gemv = candidates
        .iter()
        .zip(timings)
        .position(|(k, (_, g))| matches!(k.run, simd::DecodeFn::Gemv(_)) && *g >= fastest * (1.0 - GEMV_TIE));
    Some(gemv.unwrap_or(best))
}

/// The kernel of a format left unmeasured: the first matrix-vector kernel (shaped for decode) of `candidates` (the
/// ones bit-identical to the prefill kernel, the prefill kernel first), else the prefill kernel.
fn default_kernel(candidates: &[DecodeKernel]) -> DecodeKernel {
    candidates.iter().find(|k| matches!(k.run, simd::DecodeFn::Gemv(_))).copied().unwrap_or(candidates[0])
}

/// Times each candidate on real rows of `mats` (all of one format) with a deterministic activation row and returns
/// each candidate's best pass in GB/s of weights, or nothing when the first round ended far past `deadline` (a
/// cold page cache: the times would be disk reads). Every timed pass reads its own [`SAMPLE_BYTES`] of rows,
/// which no other pass touched, so that the rows come from memory as in decode (where every weight is read once
/// per token) and not from a cache warmed by the previous candidate; the pages are mapped beforehand.
fn measure(
    par: &Parallel<'_>,
    file: &GgufFile,
    mats: &[&MatrixRef],
    candidates: &[DecodeKernel],
    deadline: Instant,
) -> Vec<(&'static str, f64)> {
    let wanted = ROUNDS * candidates.len();
    // (matrix, first row, rows) slices of about SAMPLE_BYTES, walking the matrices in order (wrapping around when
    // the format has fewer bytes than the passes need).
    let mut slices: Vec<(&MatrixRef, usize, usize)> = Vec::new();
    let total: usize = mats.iter().map(|m| m.n_bytes()).sum();
    'fill: for _ in 0..wanted {
        for m in mats {
            let step = (SAMPLE_BYTES / m.row_bytes.max(1)).clamp(1, m.rows);
            let mut r = 0;
            while r < m.rows {
                let rows = step.min(m.rows - r);
                slices.push((m, r, rows));
                if slices.len() == wanted {
                    break 'fill;
                }
                r += rows;
            }
        }
        if total == 0 {
            return Vec::new();
        }
    }
    // The rows' bytes: only a mapped file has them in memory (a streamed model's decode kernel stays unmeasured).
    let Some(slices) = slices
        .into_iter()
        .map(|(m, r0, rows)| m.bytes(file)?.get(r0 * m.row_bytes..(r0 + rows) * m.row_bytes).map(|b| (m, b, rows)))
        .collect::<Option<Vec<_>>>()
    else {
        return Vec::new();
    };
    let ty = mats[0].ty;
    let mut tokens: Vec<(usize, PreparedToken)> = Vec::new();
    for (m, _, _) in &slices {
        if !tokens.iter().any(|(c, _)| *c == m.cols) {
            tokens.push((m.cols, PreparedToken::new(ty, &activations(m.cols))));
        }
    }
    // Map the pages (one byte per page) so that the passes time reads, not page faults.
    let mut touched = 0u8;
    for (_, bytes, _) in &slices {
        touched ^= bytes.iter().step_by(4096).fold(0u8, |a, b| a ^ b);
    }
    std::hint::black_box(touched);
    let mut out = vec![0f32; slices.iter().map(|s| s.2).max().unwrap_or(0)];
    let mut pass = |k: &DecodeKernel, (m, bytes, rows): (&MatrixRef, &[u8], usize)| {
        let x = &tokens.iter().find(|(c, _)| *c == m.cols).expect("prepared above").1;
        let t0 = Instant::now();
        x.decode(par, k.run, m.cols, m.row_bytes, bytes, &mut out[..rows]);
        bytes.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9) / 1e9
    };
    let mut best = vec![0f64; candidates.len()];
    for round in 0..ROUNDS {
        if round > 0 && Instant::now() >= deadline {
            break;
        }
        for (c, (k, b)) in candidates.iter().zip(best.iter_mut()).enumerate() {
            *b = b.max(pass(k, slices[round * candidates.len() + c]));
        }
        if round == 0 && Instant::now() >= deadline + PLAN_BUDGET / 2 {
            return Vec::new();
        }
    }
    candidates.iter().zip(best).map(|(k, g)| (k.name, g)).collect()
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
            if i % 61 == 7 {
                u * 8.0
            } else {
                u
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fastest candidate wins, except that a matrix-vector kernel within [`GEMV_TIE`] of it wins a near tie.
    #[test]
    fn the_fastest_kernel_is_chosen_and_a_near_tie_goes_to_the_matrix_vector_kernel() {
        fn tile(
            _: usize,
            _: &[u8],
            _: usize,
            _: &simd::ActivationRows<'_>,
            _: usize,
            _: simd::TileShape,
            _: &mut [f32],
        ) {
        }
        fn gemv(_: usize, _: &[u8], _: usize, _: &simd::ActivationRows<'_>, _: &mut [f32]) {}
        let tile = simd::TileKernel { run: tile, max_rows: 8, max_tokens: 8 };
        let candidates = [
            DecodeKernel { name: "avx512vnni-rows8", run: simd::DecodeFn::Tile(tile), matches_prefill: true },
            DecodeKernel { name: "avx512vnni-gemv", run: simd::DecodeFn::Gemv(gemv), matches_prefill: true },
        ];
        let timed = |a: f64, b: f64| choose(&candidates, &[("avx512vnni-rows8", a), ("avx512vnni-gemv", b)]);
        assert_eq!(timed(10.0, 25.0), Some(1));
        assert_eq!(timed(25.0, 10.0), Some(0));
        assert_eq!(timed(6.5, 6.4), Some(1), "a near tie goes to the matrix-vector kernel");
        assert_eq!(timed(10.0, 9.4), Some(0), "6 % slower is not a tie");
        assert_eq!(choose(&candidates, &[]), None);
        // Without a matrix-vector kernel, the fastest.
        assert_eq!(choose(&candidates[..1], &[("avx512vnni-rows8", 3.0)]), Some(0));
    }

    /// Without a request or `PICOLM_KERNEL`, a load plans with `auto` (whose candidates all equal the prefill
    /// kernel bit for bit).
    #[test]
    fn the_default_choice_is_auto() {
        if std::env::var_os(KERNEL_ENV).is_some() {
            return; // the runner chose a kernel for the whole run
        }
        assert_eq!(KernelChoice::resolve(None), Ok(KernelChoice::Auto));
        assert_eq!(KernelChoice::resolve(Some("tile")), Ok(KernelChoice::Tile));
        assert_eq!(KernelChoice::resolve(Some("avx2-gemv")), Ok(KernelChoice::Named("avx2-gemv")));
        assert!(KernelChoice::resolve(Some("avx9")).is_err());
    }
}
