//! Running the benchmark (feature `bench`): the timed `pp` / `tg` tests of [`BenchParams`], the optional read
//! bandwidth test, and the report as a table or JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::BenchParams;
use crate::error::Error;
use crate::memory::MemoryUsage;
use crate::model::{Model, ModelParams};
use crate::session::{Session, SessionParams};

/// One measured test.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// `"pp512"`, `"tg128"`, ...
    pub test: String,
    /// Threads used.
    pub n_threads: usize,
    /// Tokens per second of each timed repetition.
    pub samples: Vec<f64>,
}

impl BenchRow {
    /// Mean tokens/s.
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// Sample standard deviation of tokens/s (0 for a single sample).
    pub fn sd(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.samples.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

/// The full benchmark outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Model file.
    pub model_path: String,
    /// Model file size in bytes.
    pub model_bytes: u64,
    /// Weight types present, e.g. `"Q4_1, Q8_0, F32"`.
    pub weight_types: String,
    /// The CPU kernel path chosen at run time.
    pub cpu_path: String,
    /// The decode kernel of each weight format and how it was chosen ([`crate::compute::planner::KernelPlan::describe`]).
    pub kernel_plan: String,
    /// Milliseconds the kernel planner added to the model load.
    pub plan_ms: f64,
    /// Bytes of weights read per decoded token (every matrix once, from the tensor table).
    pub weight_bytes_per_token: u64,
    /// Read bandwidth in GB/s per thread count (with `bandwidth`).
    pub bandwidth: Vec<(usize, f64)>,
    /// Measurements.
    pub rows: Vec<BenchRow>,
    /// Peak resident memory of the process at the end.
    pub memory: MemoryUsage,
}

impl BenchReport {
    /// Machine-readable form (one JSON object).
    pub fn to_json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"test\":\"{}\",\"n_threads\":{},\"tokens_per_second_mean\":{:.3},\"tokens_per_second_sd\":{:.3},\"samples\":[{}]}}",
                    r.test,
                    r.n_threads,
                    r.mean(),
                    r.sd(),
                    r.samples.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        format!(
            "{{\"model\":{},\"model_bytes\":{},\"weight_types\":\"{}\",\"cpu_path\":\"{}\",\"kernel_plan\":{},\"plan_ms\":{:.3},\"weight_bytes_per_token\":{},\"bandwidth_gbps\":[{}],\"peak_rss_bytes\":{},\"rss_anon_bytes\":{},\"rss_file_bytes\":{},\"results\":[{}]}}",
            json_string(&self.model_path),
            self.model_bytes,
            self.weight_types,
            self.cpu_path,
            json_string(&self.kernel_plan),
            self.plan_ms,
            self.weight_bytes_per_token,
            self.bandwidth.iter().map(|(t, g)| format!("{{\"n_threads\":{t},\"gbps\":{g:.3}}}")).collect::<Vec<_>>().join(","),
            self.memory.peak_rss,
            self.memory.rss_anon,
            self.memory.rss_file,
            rows.join(",")
        )
    }

    /// Human-readable table in llama-bench's layout.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "model: {} ({:.1} MiB, {})\ncpu path: {}\n| threads | test    |              t/s |\n|--------:|:--------|-----------------:|\n",
            self.model_path,
            self.model_bytes as f64 / (1 << 20) as f64,
            self.weight_types,
            self.cpu_path
        );
        for r in &self.rows {
            s += &format!("| {:>7} | {:<7} | {:>8.2} ± {:<5.2} |\n", r.n_threads, r.test, r.mean(), r.sd());
        }
        s += &format!("decode kernels (planned in {:.1} ms at load):\n", self.plan_ms);
        for line in self.kernel_plan.lines() {
            s += &format!("  {line}\n");
        }
        for &(t, gbps) in &self.bandwidth {
            let ceiling = gbps * 1e9 / self.weight_bytes_per_token.max(1) as f64;
            s += &format!(
                "read bandwidth, {t} thread(s): {gbps:.1} GB/s; decode ceiling {ceiling:.2} t/s ({:.1} MiB of weights per token)",
                self.weight_bytes_per_token as f64 / (1 << 20) as f64
            );
            match self.rows.iter().find(|r| r.n_threads == t && r.test.starts_with("tg")) {
                Some(r) => s += &format!("; {} at {:.0}% of it\n", r.test, 100.0 * r.mean() / ceiling),
                None => s += "\n",
            }
        }
        s += &format!(
            "peak RSS: {:.1} MiB (anonymous {:.1} MiB, file {:.1} MiB now)\n",
            self.memory.peak_rss as f64 / (1 << 20) as f64,
            self.memory.rss_anon as f64 / (1 << 20) as f64,
            self.memory.rss_file as f64 / (1 << 20) as f64
        );
        s
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out + "\""
}

/// Deterministic, valid, non-special token ids for benchmark prompts.
fn bench_tokens(model: &Model, n: usize) -> Vec<u32> {
    let nv = model.config().n_vocab as u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (1000 + x % (nv.saturating_sub(2000).max(1))) as u32 % nv as u32
        })
        .collect()
}

/// Runs the benchmark on the model at `path`.
pub fn run_bench(path: &Path, params: &BenchParams, progress: &mut dyn FnMut(&BenchRow)) -> Result<BenchReport, Error> {
    if params.threads.is_empty() || params.repetitions == 0 {
        return Err(Error::InvalidArgument {
            name: "bench".into(),
            why: "need at least one thread count and repetition".into(),
        });
    }
    let n_ctx = (params.n_prompt.max(params.n_gen) + 1).max(16);
    let mut rows = Vec::new();
    let mut report_model = None;
    for &t in &params.threads {
        // The previous thread count's model is released first, so peak RSS counts one mapping of the file.
        drop(report_model.take());
        let model = Arc::new(Model::load(path, &ModelParams { n_ctx, n_threads: t, ..params.model.clone() })?);
        let mut session = Session::new(
            model.clone(),
            &SessionParams { n_ctx, n_batch: params.n_batch.min(n_ctx), kv_type: params.kv_type },
        )?;
        // Rows report the threads that ran (a request above the CPUs is clamped).
        let t = model.n_threads();
        if params.n_prompt > 0 {
            let tokens = bench_tokens(&model, params.n_prompt);
            let mut row = BenchRow { test: format!("pp{}", params.n_prompt), n_threads: t, samples: Vec::new() };
            for rep in 0..=params.repetitions {
                session.reset();
                let t0 = Instant::now();
                session.eval(&tokens)?;
                let s = t0.elapsed().as_secs_f64();
                if rep > 0 {
                    row.samples.push(params.n_prompt as f64 / s);
                }
            }
            progress(&row);
            rows.push(row);
        }
        if params.n_gen > 0 {
            let tokens = bench_tokens(&model, params.n_gen);
            let mut row = BenchRow { test: format!("tg{}", params.n_gen), n_threads: t, samples: Vec::new() };
            for rep in 0..=params.repetitions {
                session.reset();
                let t0 = Instant::now();
                for &tok in &tokens {
                    session.eval(&[tok])?;
                }
                let s = t0.elapsed().as_secs_f64();
                if rep > 0 {
                    row.samples.push(params.n_gen as f64 / s);
                }
            }
            progress(&row);
            rows.push(row);
        }
        report_model = Some(model);
    }
    let model = report_model.expect("at least one thread count");
    let weights = model.weights();
    let weight_bytes_per_token =
        weights.layers.iter().flat_map(|l| l.matrices()).map(|m| m.n_bytes() as u64).sum::<u64>()
            + weights.output.n_bytes() as u64
            + weights.token_embd.row_bytes as u64;
    // Memory before the bandwidth test, whose buffer is not the engine's.
    let memory = MemoryUsage::current().unwrap_or_default();
    let mut bandwidth = Vec::new();
    if params.bandwidth {
        let mut counts: Vec<u64> = std::iter::once(1).chain(rows.iter().map(|r| r.n_threads as u64)).collect();
        crate::sorting::sort_u64(&mut counts);
        counts.dedup();
        for t in counts.into_iter().map(|t| t as usize) {
            bandwidth.push((t, crate::bandwidth::read_bandwidth(t, crate::bandwidth::DEFAULT_BYTES)? / 1e9));
        }
    }
    let names: Vec<&str> = model.file().tensors().iter().map(|t| t.ggml_type.name()).collect();
    let mut types: Vec<&str> =
        crate::sorting::ids_sorted_by_key(names.len(), |i| names[i]).into_iter().map(|i| names[i as usize]).collect();
    types.dedup();
    Ok(BenchReport {
        model_path: path.display().to_string(),
        model_bytes: model.file().len(),
        weight_types: types.join(", "),
        cpu_path: crate::simd::cpu_path().to_string(),
        kernel_plan: model.kernel_plan().describe(),
        plan_ms: model.kernel_plan().elapsed().as_secs_f64() * 1e3,
        weight_bytes_per_token,
        bandwidth,
        rows,
        memory,
    })
}
