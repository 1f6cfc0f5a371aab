//! Tests of the SIMD kernels: every kernel this CPU runs (one-row dot products, tiles, matrix-vector kernels,
//! activation quantizers, f16 conversions) against the scalar reference in [`crate::quant`], on random and extreme
//! blocks.

use super::*;
use crate::quant;

/// Deterministic pseudo-random floats with occasional extreme values (also used by the aarch64 kernel tests).
pub(super) fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 13 {
                u * scale * 30.0
            } else {
                u * scale
            }
        })
        .collect()
}

fn check(ty: GgmlType, n: usize, w: &[f32], x: &[f32]) {
    let Some(kernel) = vec_dot_kernel(ty) else { return };
    let wq = {
        let mut b = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
        quant::quantize_row(ty, w, &mut b).unwrap();
        b
    };
    let xt = quant::vec_dot_type(ty);
    let mut xq = vec![0u8; xt.row_bytes(n as u64).unwrap() as usize];
    quant::quantize_row(xt, x, &mut xq).unwrap();
    let reference = quant::vec_dot(ty, n, &wq, &xq).unwrap();
    let fast = kernel(n, &wq, &xq);
    // Both sum the same integer (or float) products; only the float accumulation order differs.
    let magnitude: f32 = w.iter().zip(x).map(|(a, b)| (a * b).abs()).sum::<f32>().max(1e-6);
    let tol = 2e-5 * magnitude + 1e-6;
    assert!((reference - fast).abs() <= tol, "{ty}: n={n} reference {reference} simd {fast} (tol {tol})");
}

/// The CPUs with SIMD paths must actually hand out kernels (so the comparison below cannot silently skip).
#[test]
fn simd_kernels_exist_on_simd_cpus() {
    eprintln!("cpu path: {}", cpu_path());
    let expected: &[GgmlType] = match cpu_path() {
        p if p.starts_with("x86_64-avx2") => &[
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q5_K,
        ],
        // (Q4_0, Q4_1, Q5_0, Q8_0 and Q4_K have tile kernels: see aarch64_neon_tiles' tests.)
        p if p.starts_with("aarch64-neon") => &[
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::Q5_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q5_K,
        ],
        // (Q4_0 and Q8_0 have the four-row tile kernel: see below.)
        p if p.starts_with("armv7-neon") => &[GgmlType::F16, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K],
        _ => &[],
    };
    for &ty in expected {
        assert!(vec_dot_kernel(ty).is_some(), "no {} kernel for {ty}", cpu_path());
    }
    if cpu_path().starts_with("x86_64-avx2") || cpu_path().starts_with("aarch64-neon") {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            assert!(tile_kernel(ty).is_some(), "no tile kernel for {ty}");
        }
    }
    if cpu_path().starts_with("armv7-neon") {
        for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
            assert!(tile_kernel(ty).is_some(), "no tile kernel for {ty}");
        }
    }
}

/// Every one-row SIMD kernel is one inference reaches: the matmul (and the decode candidates) use a one-row kernel
/// only for formats without a tile kernel, so a one-row kernel next to a tile kernel would be dead code that only the
/// tests exercise.
#[test]
fn one_row_kernels_exist_only_for_formats_without_a_tile_kernel() {
    for ty in GgmlType::ALL {
        if vec_dot_kernel(ty).is_some() {
            assert!(tile_kernel(ty).is_none(), "{ty}: a {} one-row kernel that no matmul reaches", cpu_path());
        }
    }
}

/// Run-time detection picks the path the test runner expects for the emulated CPU (scripts/test-arm.sh sets
/// `PICOLM_EXPECT_CPU_PATH` for each `-cpu`), so a broken detection cannot leave a CPU on the scalar path unseen.
#[test]
fn cpu_path_is_the_expected_one() {
    if let Some(want) = std::env::var_os("PICOLM_EXPECT_CPU_PATH").filter(|w| !w.is_empty()) {
        assert_eq!(std::ffi::OsStr::new(cpu_path()), want, "kernel path on this CPU");
    }
}

/// A tile check's data: `rows` quantized weight rows and `xs.len()` converted activation rows.
struct TileCase {
    wq: Vec<u8>,
    w_row_bytes: usize,
    xq: Vec<u8>,
    x_row_bytes: usize,
    scales: Vec<f32>,
    sums: Vec<i32>,
    blocks: usize,
    per_block: usize,
}

impl TileCase {
    fn new(ty: GgmlType, n: usize, ws: &[Vec<f32>], xs: &[Vec<f32>]) -> TileCase {
        let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
        let mut wq = vec![0u8; w_row_bytes * ws.len()];
        for (w, row) in ws.iter().zip(wq.chunks_exact_mut(w_row_bytes)) {
            quant::quantize_row(ty, w, row).unwrap();
        }
        let xt = quant::vec_dot_type(ty);
        let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
        let (blocks, per_block) = (n / xt.block_size(), scales_per_block(xt));
        let sums_per_row = if per_block > 0 { blocks } else { 0 };
        let mut xq = vec![0u8; x_row_bytes * xs.len()];
        let mut scales = vec![0f32; blocks * per_block * xs.len()];
        let mut sums = vec![0i32; sums_per_row * xs.len()];
        for (i, x) in xs.iter().enumerate() {
            let row = &mut xq[i * x_row_bytes..(i + 1) * x_row_bytes];
            quant::quantize_row(xt, x, row).unwrap();
            let sc = &mut scales[i * blocks * per_block..(i + 1) * blocks * per_block];
            prepare_activations(xt, row, sc, &mut sums[i * sums_per_row..(i + 1) * sums_per_row]);
        }
        TileCase { wq, w_row_bytes, xq, x_row_bytes, scales, sums, blocks, per_block }
    }

    fn rows(&self) -> ActivationRows<'_> {
        ActivationRows {
            bytes: &self.xq,
            row_bytes: self.x_row_bytes,
            blocks_per_row: self.blocks,
            scales_per_block: self.per_block,
            scales: &self.scales,
            sums: &self.sums,
        }
    }

    /// Results of weight rows `r0 .. r0 + rows` times tokens `t0 .. t0 + tokens` in one call.
    fn run(&self, k: &TileKernel, n: usize, r0: usize, rows: usize, t0: usize, tokens: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows * tokens];
        let shape = TileShape { rows, tokens, ld: tokens };
        (k.run)(n, &self.wq[r0 * self.w_row_bytes..], self.w_row_bytes, &self.rows(), t0, shape, &mut out);
        out
    }
}

#[test]
fn tile_kernels_match_the_scalar_reference_and_do_not_depend_on_the_tile_shape() {
    let mut checked = 0;
    for ty in GgmlType::ALL {
        for (name, k) in tile_kernel_candidates(ty).into_iter().flatten() {
            for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (4, 4096)] {
                for scale in [1e-3f32, 1.0, 50.0] {
                    // Seventeen weight rows (a full tile of the sixteen-row kernels and a partial one, two full
                    // tiles of the eight-row ones and a partial one), some all-zero or extreme.
                    let mut ws: Vec<Vec<f32>> = (0..17u64).map(|r| values(seed + 20 + r, n, scale)).collect();
                    ws[2] = vec![0.0; n];
                    ws[5] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                    ws[12] = ws[5].iter().map(|v| -v).collect();
                    let mut xs: Vec<Vec<f32>> =
                        (0..MAX_TILE_TOKENS as u64 + 1).map(|t| values(seed + 10 + t, n, scale)).collect();
                    xs[1] = vec![0.0; n];
                    let case = TileCase::new(ty, n, &ws, &xs);
                    let wide = case.run(&k, n, 0, k.max_rows, 0, k.max_tokens);
                    for r in 0..k.max_rows {
                        for t in 0..k.max_tokens {
                            let one = case.run(&k, n, r, 1, t, 1)[0];
                            let got = wide[r * k.max_tokens + t];
                            assert_eq!(
                                one.to_bits(),
                                got.to_bits(),
                                "{ty} {name}: row {r} token {t} depends on the tile"
                            );
                            let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                            let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                            let reference = quant::vec_dot(ty, n, wq, xq).unwrap();
                            let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                            let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                            assert!(
                                (reference - got).abs() <= tol,
                                "{ty} {name}: n={n} reference {reference} tile {got}"
                            );
                            checked += 1;
                        }
                    }
                    // A tile of a little more than half the kernel's rows (a wide kernel's unused lanes repeat
                    // its last row) agrees with one-by-one calls.
                    let part_rows = k.max_rows / 2 + 1;
                    let part = case.run(&k, n, 2, part_rows, 0, k.max_tokens);
                    for r in 0..part_rows {
                        for t in 0..k.max_tokens {
                            let one = case.run(&k, n, 2 + r, 1, t, 1)[0];
                            let got = part[r * k.max_tokens + t];
                            assert_eq!(one.to_bits(), got.to_bits(), "{ty} {name}: partial tile, row {r} token {t}");
                        }
                    }
                    // Partial tiles at the end of the matrix (last row; all and some of the tokens from the
                    // second) agree too.
                    let last = ws.len() - 1;
                    for count in [k.max_tokens, k.max_tokens - 3] {
                        let part = case.run(&k, n, last, 1, 1, count);
                        for (i, v) in part.iter().enumerate() {
                            let one = case.run(&k, n, last, 1, 1 + i, 1)[0];
                            assert_eq!(v.to_bits(), one.to_bits(), "{ty} {name}: partial tile of {count} tokens");
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} tile results checked on {}", cpu_path());
}

/// Runs a decode kernel over weight rows `r0..rows` of `case` for token `t` (each call as the engine makes it).
fn decode_run(k: &DecodeKernel, case: &TileCase, n: usize, r0: usize, rows: usize, t: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; rows - r0];
    let w = &case.wq[r0 * case.w_row_bytes..];
    match k.run {
        DecodeFn::Gemv(g) => g(n, w, case.w_row_bytes, &case.rows().token(t), &mut out),
        DecodeFn::Tile(tile) => {
            for (i, o) in out.iter_mut().enumerate() {
                let shape = TileShape { rows: 1, tokens: 1, ld: 1 };
                (tile.run)(
                    n,
                    &w[i * case.w_row_bytes..],
                    case.w_row_bytes,
                    &case.rows(),
                    t,
                    shape,
                    std::slice::from_mut(o),
                );
            }
        }
        DecodeFn::Dot(dot) => {
            let x = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
            for (i, o) in out.iter_mut().enumerate() {
                *o = dot(n, &w[i * case.w_row_bytes..(i + 1) * case.w_row_bytes], x);
            }
        }
    }
    out
}

/// Every decode kernel candidate (matrix-vector kernels included) agrees with the scalar reference, on every
/// row of a run, with block counts that leave every tail of the four-block loops; a row's result does not
/// depend on where the run starts.
#[test]
fn decode_kernels_match_the_scalar_reference() {
    let mut checked = 0;
    for ty in GgmlType::ALL {
        if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
            continue;
        }
        let candidates = decode_kernel_candidates(ty);
        assert_eq!(candidates[0].name, prefill_kernel(ty).name);
        for k in &candidates {
            assert!(DECODE_KERNEL_NAMES.contains(&k.name), "{ty}: {} is not a listed name", k.name);
            for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (5, 96), (6, 160), (7, 224)] {
                if n % ty.block_size() != 0 {
                    continue;
                }
                for scale in [1e-3f32, 1.0, 50.0] {
                    let mut ws: Vec<Vec<f32>> = (0..9u64).map(|r| values(seed + 40 + r, n, scale)).collect();
                    ws[2] = vec![0.0; n];
                    ws[5] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                    let mut xs: Vec<Vec<f32>> = (0..3u64).map(|t| values(seed + 70 + t, n, scale)).collect();
                    xs[1] = vec![0.0; n];
                    let case = TileCase::new(ty, n, &ws, &xs);
                    for t in 0..xs.len() {
                        let all = decode_run(k, &case, n, 0, ws.len(), t);
                        let tail = decode_run(k, &case, n, 4, ws.len(), t);
                        for (r, got) in all.iter().enumerate() {
                            let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                            let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                            let reference = quant::vec_dot(ty, n, wq, xq).unwrap();
                            let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                            let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                            assert!(
                                (reference - got).abs() <= tol,
                                "{ty} {}: n={n} row {r} reference {reference} got {got}",
                                k.name
                            );
                            if r >= 4 {
                                assert_eq!(
                                    got.to_bits(),
                                    tail[r - 4].to_bits(),
                                    "{ty} {}: row {r} depends on the run",
                                    k.name
                                );
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} decode results checked on {}", cpu_path());
}

/// The CPU paths whose candidate tables this CPU can run: x86-64 with AVX-512 VNNI checks both its AVX-512 path
/// and its AVX2 path (`PICOLM_NO_AVX512`) in one run.
fn cpu_paths() -> Vec<bool> {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar() && x86_common::avx2_available() && x86_common::avx512vnni_available() {
        return vec![true, false];
    }
    vec![false]
}

/// Offsets of the f16 fields of a block of the formats with tiles (set to finite values in raw random blocks).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Results `[token][row]` of `k` for every weight row of `case` and its first `tokens` activation rows, called as
/// the matmul calls it: a tile kernel in tiles of its most rows by its most tokens (batched prefill, with partial
/// tiles at the ends), any other kernel one token at a time over the whole run of rows (decode).
fn as_matmul_runs(k: &DecodeKernel, case: &TileCase, n: usize, rows: usize, tokens: usize) -> Vec<Vec<u32>> {
    let mut out = vec![vec![0u32; rows]; tokens];
    match k.run {
        DecodeFn::Tile(tile) => {
            let mut r0 = 0;
            while r0 < rows {
                let take = tile.max_rows.min(rows - r0);
                let mut t0 = 0;
                while t0 < tokens {
                    let nt = tile.max_tokens.min(tokens - t0);
                    let res = case.run(&tile, n, r0, take, t0, nt);
                    for r in 0..take {
                        for t in 0..nt {
                            out[t0 + t][r0 + r] = res[r * nt + t].to_bits();
                        }
                    }
                    t0 += nt;
                }
                r0 += take;
            }
        }
        _ => {
            for (t, o) in out.iter_mut().enumerate() {
                *o = decode_run(k, case, n, 0, rows, t).iter().map(|v| v.to_bits()).collect();
            }
        }
    }
    out
}

/// Asserts that `k` gives the results of `reference` bit for bit on random weights (quantized at three scales,
/// and raw random blocks), zero and extreme rows (quantized from +-65000, and all quant and scale bits set), zero,
/// random and extreme activations (every quant +127, or every quant -127: the largest sums of products a kernel's
/// lanes must hold), with row counts that leave partial tiles of every kind and row lengths that leave every tail
/// of the kernels' block loops. Returns the results compared.
fn assert_bit_identical(ty: GgmlType, reference: &DecodeKernel, k: &DecodeKernel, path: &str) -> usize {
    let mut compared = 0;
    let lengths = [(1u64, 32usize), (2, 96), (3, 160), (4, 224), (5, 256), (6, 512), (7, 768), (10, 1024), (8, 1536)];
    for (seed, n) in lengths.into_iter().chain([(11, 2048), (9, 2816), (12, 5632)]) {
        if n % ty.block_size() != 0 {
            continue;
        }
        let row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
        for rows in [1usize, 3, 9, 14, 17] {
            for scale in [1e-3f32, 1.0, 50.0] {
                let mut ws: Vec<Vec<f32>> = (0..rows as u64).map(|r| values(seed + 140 + r, n, scale)).collect();
                if rows > 2 {
                    ws[2] = vec![0.0; n];
                    ws[rows - 1] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                }
                let mut xs: Vec<Vec<f32>> = (0..3u64).map(|t| values(seed + 170 + t, n, scale)).collect();
                xs[1] = vec![0.0; n];
                xs.push(vec![scale; n]);
                xs.push(vec![-scale; n]);
                let mut case = TileCase::new(ty, n, &ws, &xs);
                // Raw random blocks (every bit pattern of the quants and packed scales) in every other row but
                // the first, with finite f16 fields.
                let mut bits = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
                for r in (1..rows).step_by(2) {
                    for (i, b) in case.wq[r * row_bytes..(r + 1) * row_bytes].iter_mut().enumerate() {
                        bits ^= bits << 13;
                        bits ^= bits >> 7;
                        bits ^= bits << 17;
                        *b = (bits >> 32) as u8;
                        let at = i % ty.block_bytes();
                        if let Some(&f) = f16_fields(ty).iter().find(|&&f| at == f || at == f + 1) {
                            let v = f32_to_f16(scale * ((bits >> 40) as f32 / (1u64 << 24) as f32 - 0.5)).to_le_bytes();
                            *b = v[at - f];
                        }
                    }
                }
                if rows > 2 {
                    // All quant and packed scale bits set (the largest quants), with finite f16 fields.
                    let half = f32_to_f16(scale).to_le_bytes();
                    for (i, b) in case.wq[(rows - 2) * row_bytes..(rows - 1) * row_bytes].iter_mut().enumerate() {
                        let at = i % ty.block_bytes();
                        *b = match f16_fields(ty).iter().find(|&&f| at == f || at == f + 1) {
                            Some(&f) => half[at - f],
                            None => 0xFF,
                        };
                    }
                }
                let (want, got) =
                    (as_matmul_runs(reference, &case, n, rows, xs.len()), as_matmul_runs(k, &case, n, rows, xs.len()));
                for (t, (a, b)) in want.iter().zip(&got).enumerate() {
                    let differ = a.iter().zip(b).position(|(x, y)| x != y);
                    assert!(
                        differ.is_none(),
                        "{ty} {path}: {} differs from {} at row {} token {t} (n={n}, {rows} rows, scale {scale}): {} vs {}",
                        k.name,
                        reference.name,
                        differ.unwrap(),
                        f32::from_bits(b[differ.unwrap()]),
                        f32::from_bits(a[differ.unwrap()]),
                    );
                    compared += a.len();
                }
            }
        }
    }
    compared
}

fn path_name(avx512: bool) -> &'static str {
    if avx512 {
        "AVX-512 path"
    } else {
        "default path without AVX-512"
    }
}

/// The declaration the planner trusts: every decode candidate declared bit-identical to the prefill kernel
/// ([`DecodeKernel::matches_prefill`]) gives the prefill kernel's results (batched, as prefill runs it) bit for
/// bit, on every CPU path of this CPU. Where x86-64 has matrix-vector kernels for the K-quants, each path has one
/// declared identical (what `auto` may choose instead of the tile).
#[test]
fn candidates_declared_identical_to_prefill_equal_it_bit_for_bit() {
    let mut compared = 0;
    for avx512 in cpu_paths() {
        let path = path_name(avx512);
        for ty in GgmlType::ALL {
            if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
                continue;
            }
            let candidates = decode_kernel_candidates_on(ty, avx512);
            let prefill = &candidates[0];
            assert!(prefill.matches_prefill, "{ty} {path}: the prefill kernel {} is not declared", prefill.name);
            for k in candidates.iter().skip(1).filter(|k| k.matches_prefill) {
                compared += assert_bit_identical(ty, prefill, k, path);
            }
            if cpu_path().starts_with("x86_64-avx2") && matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K) {
                let gemv = candidates.iter().find(|k| k.matches_prefill && matches!(k.run, DecodeFn::Gemv(_)));
                assert!(
                    gemv.is_some(),
                    "{ty} {path}: no matrix-vector kernel equals the prefill kernel {}",
                    prefill.name
                );
            }
        }
    }
    eprintln!("{compared} results compared on {}", cpu_path());
}

/// Every x86-64 matrix-vector kernel repeats the float steps of its twin tile (`gemv_twin`): bit-identical
/// results, on both paths, whether or not the twin is the path's prefill kernel.
#[cfg(target_arch = "x86_64")]
#[test]
fn every_gemv_equals_its_twin_tile_bit_for_bit() {
    let mut pairs = 0;
    for avx512 in cpu_paths() {
        let path = path_name(avx512);
        for ty in GgmlType::ALL {
            let candidates = decode_kernel_candidates_on(ty, avx512);
            for k in candidates.iter().filter(|k| matches!(k.run, DecodeFn::Gemv(_))) {
                let twin = gemv_twin(k.name, ty);
                let tile = candidates.iter().find(|c| c.name == twin);
                let tile = tile.unwrap_or_else(|| panic!("{ty} {path}: {} has no twin {twin}", k.name));
                assert_eq!(k.matches_prefill, twin == candidates[0].name, "{ty} {path}: {}", k.name);
                assert_bit_identical(ty, tile, k, path);
                pairs += 1;
            }
        }
    }
    if cpu_path().starts_with("x86_64-avx2") {
        assert!(pairs >= 5, "only {pairs} matrix-vector kernels checked");
    }
}

/// The kernels that sum in another order than the prefill kernel are declared so (forced by name only): on x86-64
/// the tile of the other path, on aarch64 the one-row `neon-dot` beside the tile.
#[test]
fn kernels_with_other_rounding_are_not_declared_identical() {
    for avx512 in cpu_paths() {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            let candidates = decode_kernel_candidates_on(ty, avx512);
            for k in candidates.iter().skip(1).filter(|k| matches!(k.run, DecodeFn::Tile(_))) {
                assert!(!k.matches_prefill, "{ty} {}: {} declared identical", path_name(avx512), k.name);
            }
            for k in candidates.iter().filter(|k| k.name == "neon-dot" && candidates.len() > 1) {
                assert!(!k.matches_prefill, "{ty}: {} declared identical to the tile", k.name);
            }
        }
    }
}

/// The Q4_0 kernels (whose x86 row kernel does its float steps per group of eight blocks) on every block count
/// from 1 to 17, so every tail of a group: each tile and decode kernel agrees with the scalar reference, a full
/// tile with one-token tiles bit for bit, and each matrix-vector kernel with its twin tile bit for bit. The
/// weights include all-extreme rows (nibbles 0 and 15) and the activations an all-extreme row (quants -127/127).
#[test]
fn q4_0_kernels_agree_on_every_block_count() {
    let ty = GgmlType::Q4_0;
    let mut checked = 0;
    for blocks in 1..=17usize {
        let n = 32 * blocks;
        for scale in [1e-3f32, 1.0, 50.0] {
            let seed = blocks as u64 * 31;
            let mut ws: Vec<Vec<f32>> = (0..17u64).map(|r| values(seed + r, n, scale)).collect();
            ws[3] = (0..n).map(|i| if i % 2 == 0 { 65000.0 } else { -65000.0 }).collect();
            ws[6] = (0..n).map(|i| if i % 3 == 0 { -scale } else { scale * 0.875 }).collect();
            ws[13] = ws[3].iter().map(|v| -v).collect();
            let mut xs: Vec<Vec<f32>> = (0..MAX_TILE_TOKENS as u64).map(|t| values(seed + 100 + t, n, scale)).collect();
            xs[2] = (0..n).map(|i| if i % 5 == 0 { -scale } else { scale }).collect();
            let case = TileCase::new(ty, n, &ws, &xs);
            let reference = |r: usize, t: usize, got: f32, what: &str| {
                let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                let want = quant::vec_dot(ty, n, wq, xq).unwrap();
                let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                assert!((want - got).abs() <= tol, "{what}: n={n} row {r} token {t}: reference {want}, got {got}");
            };
            for (name, k) in tile_kernel_candidates(ty).into_iter().flatten() {
                let wide = case.run(&k, n, 0, k.max_rows, 0, k.max_tokens);
                for r in 0..k.max_rows {
                    for t in 0..k.max_tokens {
                        let got = wide[r * k.max_tokens + t];
                        let one = case.run(&k, n, r, 1, t, 1)[0];
                        assert_eq!(got.to_bits(), one.to_bits(), "{name}: n={n} row {r} token {t} depends on the tile");
                        reference(r, t, got, name);
                        checked += 1;
                    }
                }
            }
            let candidates = decode_kernel_candidates(ty);
            for k in &candidates {
                // The tile a matrix-vector kernel repeats (x86-64), run as batched prefill runs it.
                #[cfg(target_arch = "x86_64")]
                let twin = candidates.iter().find(|c| k.name.ends_with("-gemv") && c.name == gemv_twin(k.name, ty));
                #[cfg(not(target_arch = "x86_64"))]
                let twin: Option<&DecodeKernel> = None;
                let want = twin.map(|tile| as_matmul_runs(tile, &case, n, ws.len(), xs.len()));
                for t in 0..xs.len() {
                    let got = decode_run(k, &case, n, 0, ws.len(), t);
                    for (r, v) in got.iter().enumerate() {
                        reference(r, t, *v, k.name);
                    }
                    if let (Some(want), Some(tile)) = (&want, twin) {
                        let bits: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
                        assert_eq!(bits, want[t], "{}: n={n} token {t} differs from {}", k.name, tile.name);
                    }
                    checked += got.len();
                }
            }
        }
    }
    eprintln!("{checked} Q4_0 results checked on {}", cpu_path());
}

/// This CPU gets the decode kernels shaped for bandwidth where it has the instructions.
#[test]
fn gemv_kernels_are_candidates_on_x86() {
    if !cpu_path().starts_with("x86_64-avx2") {
        return;
    }
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K] {
        assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx2-gemv"), "{ty}: no avx2-gemv");
    }
    if cpu_path().ends_with("avx512vnni") {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx512vnni-gemv"), "{ty}: no VNNI gemv");
            assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx2-gemv"), "{ty}: no avx2-gemv");
        }
    }
}

#[test]
fn activation_quantizers_give_the_reference_bytes() {
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        for (seed, n) in [(1u64, 256usize), (2, 512), (3, 4096)] {
            let mut cases = vec![values(seed, n, 1.0), values(seed, n, 1e-3), values(seed, n, 300.0), vec![0.0; n]];
            // Exact halves and ties (x.5 steps), repeated magnitudes of both signs, a lone NaN and infinity.
            // Q8_0/Q8_1: amax 127 gives d = 1, so k + 0.5 are exact ties (rounded away from zero).
            cases.push((0..n).map(|i| if i % 32 == 0 { 127.0 } else { (i % 41) as f32 - 20.5 }).collect());
            // Q8_K: max -16 gives iscale 8, so odd sixteenths are exact ties (rounded to even).
            cases.push((0..n).map(|i| if i % 256 == 0 { -16.0 } else { ((i % 61) as f32 - 30.0) / 16.0 }).collect());
            cases.push(
                (0..n)
                    .map(|i| {
                        if i % 7 == 0 {
                            -2.0
                        } else if i % 5 == 0 {
                            2.0
                        } else {
                            1.0
                        }
                    })
                    .collect(),
            );
            let mut special = values(seed, n, 1.0);
            special[3] = f32::NAN;
            special[n - 1] = f32::INFINITY;
            cases.push(special);
            for x in cases {
                let bytes = ty.row_bytes(n as u64).unwrap() as usize;
                let (mut want, mut got) = (vec![0u8; bytes], vec![0u8; bytes]);
                quant::quantize_row_unchecked(ty, &x, &mut want);
                quantize_activations(ty, &x, &mut got);
                assert_eq!(want, got, "{ty}: n={n} bytes differ from the reference");
            }
        }
    }
}

/// f32 bit patterns that probe every f32 -> f16 rounding case: zeros, every exponent from f16-subnormal
/// underflow to overflow with mantissas around each tie point, the f16 range limits, infinities and NaNs (with
/// payloads and signs), plus a stride through all 2^32 patterns.
fn f32_probe_bits() -> Vec<u32> {
    let mut bits = vec![0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FBF_FFFF];
    bits.extend([0x7FA0_1000u32, 0xFF80_2001, 0x7FFF_FFFF, 0x0000_0001, 0x8000_0001, 0x007F_FFFF]);
    for exp in 90u32..=150 {
        for sign in [0u32, 0x8000_0000] {
            for m in [
                0u32, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000, 0x5000, 0x7F_E000, 0x7F_EFFF,
                0x7F_F000, 0x7F_F001, 0x7F_FFFF,
            ] {
                bits.push(sign | exp << 23 | m);
            }
            // Below f16's smallest subnormal the tie point moves with the exponent: probe a spread of mantissas.
            for m in (0u32..0x80_0000).step_by(0x1_0001) {
                bits.push(sign | exp << 23 | m);
            }
        }
    }
    bits.extend((0u64..(1 << 32)).step_by(65_537).map(|b| b as u32));
    bits
}

#[test]
fn f16_scalar_conversions_equal_the_half_crate_bit_for_bit() {
    for h in 0..=u16::MAX {
        let (want, got) = (half::f16::from_bits(h).to_f32(), f16_to_f32(h));
        assert_eq!(want.to_bits(), got.to_bits(), "f16 {h:#06x}: half {want} vs {got}");
    }
    for b in f32_probe_bits() {
        let v = f32::from_bits(b);
        let (want, got) = (half::f16::from_f32(v).to_bits(), f32_to_f16(v));
        assert_eq!(want, got, "f32 {b:#010x} ({v}): half {want:#06x} vs {got:#06x}");
    }
}

#[test]
fn f16_row_conversions_equal_the_reference_bit_for_bit() {
    // Every f16 value, in rows of lengths that leave each possible tail after the vector loop.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    for n in [65536usize, 65535, 65533, 65529, 9, 8, 7, 1, 0] {
        let src = &all[2 * (65536 - n)..];
        let (mut want, mut got) = (vec![0f32; n], vec![1f32; n]);
        quant::dequantize_row_unchecked(GgmlType::F16, src, &mut want);
        dequantize_row(GgmlType::F16, src, &mut got);
        let differ = want.iter().zip(&got).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(differ.is_none(), "n={n}: value {differ:?} differs");
    }
    let probe: Vec<f32> = f32_probe_bits().into_iter().map(f32::from_bits).collect();
    for n in [probe.len(), probe.len() - 1, probe.len() - 3, probe.len() - 7, 5, 0] {
        let src = &probe[probe.len() - n..];
        let (mut want, mut got) = (vec![0u8; 2 * n], vec![0xA5u8; 2 * n]);
        quant::quantize_row_unchecked(GgmlType::F16, src, &mut want);
        quantize_activations(GgmlType::F16, src, &mut got);
        assert_eq!(want, got, "f32 -> f16 row of {n} values");
        let mut rounded = src.to_vec();
        round_through_f16(&mut rounded);
        for (a, b) in src.iter().zip(&rounded) {
            assert_eq!(half::f16::from_f32(*a).to_f32().to_bits(), b.to_bits(), "round_through_f16({a})");
        }
    }
}

#[test]
fn f16_rows_convert_exactly() {
    for n in [0usize, 1, 7, 8, 64, 67] {
        let bits: Vec<u8> = (0..n).flat_map(|i| ((i as u16).wrapping_mul(40503) ^ 0x3c00).to_le_bytes()).collect();
        let (mut want, mut got) = (vec![0f32; n], vec![1f32; n]);
        quant::dequantize_row_unchecked(GgmlType::F16, &bits, &mut want);
        dequantize_row(GgmlType::F16, &bits, &mut got);
        assert_eq!(
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "n={n}"
        );
    }
}

#[test]
fn simd_kernels_match_the_scalar_reference() {
    for ty in GgmlType::ALL {
        if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
            continue;
        }
        for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (4, 4096)] {
            for scale in [1e-3f32, 1.0, 50.0] {
                check(ty, n, &values(seed, n, scale), &values(seed + 100, n, scale));
            }
            let zeros = vec![0.0f32; n];
            check(ty, n, &zeros, &values(seed, n, 1.0));
            check(ty, n, &values(seed, n, 1.0), &zeros);
            let maxed: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 65000.0 } else { -65000.0 }).collect();
            check(ty, n, &maxed, &values(seed, n, 1.0));
        }
    }
}

/// THE CONTRACT of the aarch64 Q4_K and Q6_K kernels (tiles of both flavours and their GEMV entries), in scalar
/// code: per super-block the exact integer sums, then the float steps in their order (Q4_K:
/// `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x)`; Q6_K: `acc = fma(acc, f32(isum), d * d_x)`).
/// Any kernel that keeps it gives these results bit for bit.
#[cfg(target_arch = "aarch64")]
fn k_quant_contract(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let f16 = |b: &[u8]| crate::half_float::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    let mut acc = 0f32;
    for b in 0..n / 256 {
        let xb = &x[b * 292..(b + 1) * 292];
        let dx = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
        let xq = |i: usize| xb[4 + i] as i8 as i32;
        if ty == GgmlType::Q4_K {
            let wb = &w[b * 144..(b + 1) * 144];
            let (mut sumi, mut summ) = (0i32, 0i32);
            for j in 0..8 {
                let (sc, m) = quant::k4_scale_min(j, &wb[4..16]);
                let (mut dot, mut xs) = (0i32, 0i32);
                for l in 0..32 {
                    let byte = wb[16 + 32 * (j / 2) + l];
                    let q = if j % 2 == 0 { byte & 15 } else { byte >> 4 };
                    dot += q as i32 * xq(32 * j + l);
                    xs += xq(32 * j + l);
                }
                sumi += sc as i32 * dot;
                summ += m as i32 * xs;
            }
            let (d, dmin) = (f16(&wb[0..2]), f16(&wb[2..4]));
            acc = (sumi as f32).mul_add(d * dx, acc);
            acc = (summ as f32).mul_add(-dmin * dx, acc);
        } else {
            let wb = &w[b * 210..(b + 1) * 210];
            let mut isum = 0i32;
            for v in 0..256 {
                let (half, quarter, l) = (v / 128, (v % 128) / 32, v % 32);
                let ql = wb[64 * half + 32 * (quarter % 2) + l];
                let nibble = if quarter < 2 { ql & 15 } else { ql >> 4 };
                let high = (wb[128 + 32 * half + l] >> (2 * quarter)) & 3;
                let q = (nibble | high << 4) as i32 - 32;
                isum += wb[192 + v / 16] as i8 as i32 * q * xq(v);
            }
            acc = (isum as f32).mul_add(f16(&wb[208..210]) * dx, acc);
        }
    }
    acc
}

/// The aarch64 Q4_K and Q6_K tiles (both flavours, every tile shape: 1..=4 rows by 1..=8 tokens and more, whole
/// and partial) and their GEMV entries equal [`k_quant_contract`] bit for bit, on rows of 256, 2048 and 5632
/// values, random and at the extremes (Q4_K: every nibble 15 or 0 and every six-bit scale and min 63; Q6_K: every
/// quant 0 or 63 and scales -128 or 127; activations -128 or 127 with their block sums). Swapping two float steps
/// in a kernel fails it.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_k_quant_kernels_keep_the_contract_bit_for_bit() {
    let flavours = if aarch64_neon::has_dotprod() { vec![false, true] } else { vec![false] };
    let mut checked = 0;
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        for (seed, n) in [(1u64, 256usize), (2, 2048), (3, 5632)] {
            let (rows, tokens) = (7, 13);
            let mut ws: Vec<Vec<f32>> = (0..rows as u64).map(|r| values(seed * 7 + r, n, 1.0)).collect();
            ws[2] = vec![0.0; n];
            let xs: Vec<Vec<f32>> = (0..tokens as u64).map(|t| values(seed * 11 + 50 + t, n, 1.0)).collect();
            let mut case = TileCase::new(ty, n, &ws, &xs);
            // Extreme rows 3 and 4 and tokens 5, 6 and 9 (unit scales).
            let one = 0x3C00u16.to_le_bytes();
            for (r, high) in [(3, true), (4, false)] {
                let row = &mut case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                for wb in row.chunks_exact_mut(ty.block_bytes()) {
                    if ty == GgmlType::Q4_K {
                        wb.fill(0xFF); // scales, mins and nibbles at their maxima
                        if !high {
                            wb[16..].fill(0x00);
                        }
                        wb[..2].copy_from_slice(&one);
                        wb[2..4].copy_from_slice(&one);
                    } else {
                        wb[..192].fill(if high { 0xFF } else { 0x00 });
                        wb[192..208].fill(if high { 0x7F } else { 0x80 });
                        wb[208..].copy_from_slice(&one);
                    }
                }
            }
            for (t, q) in [(5, -128i8), (6, 127), (9, -128)] {
                let row = &mut case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                for xb in row.chunks_exact_mut(292) {
                    xb[..4].copy_from_slice(&1f32.to_le_bytes());
                    xb[4..260].fill(q as u8);
                    for k in 0..16 {
                        xb[260 + 2 * k..262 + 2 * k].copy_from_slice(&(16 * q as i16).to_le_bytes());
                    }
                }
            }
            let want: Vec<Vec<u32>> = (0..rows)
                .map(|r| {
                    let w = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                    (0..tokens)
                        .map(|t| k_quant_contract(ty, n, w, &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes]))
                        .map(f32::to_bits)
                        .collect()
                })
                .collect();
            for &sdot in &flavours {
                let (name, k) = aarch64_neon_tiles::kernel(ty, sdot).unwrap();
                // Tiles of every shape up to the kernel's, from several first rows and tokens.
                for shape_rows in 1..=k.max_rows {
                    for shape_tokens in (1..=k.max_tokens).chain([MAX_TILE_TOKENS]) {
                        for (r0, t0) in [(0, 0), (rows - shape_rows, tokens - shape_tokens), (1, 1)] {
                            if r0 + shape_rows > rows || t0 + shape_tokens > tokens {
                                continue;
                            }
                            let got = case.run(&k, n, r0, shape_rows, t0, shape_tokens);
                            for r in 0..shape_rows {
                                for t in 0..shape_tokens {
                                    assert_eq!(
                                        got[r * shape_tokens + t].to_bits(),
                                        want[r0 + r][t0 + t],
                                        "{ty} {name}: n={n} tile {shape_rows}x{shape_tokens} at ({r0}, {t0}): row {} token {}",
                                        r0 + r,
                                        t0 + t
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
                let gemv = aarch64_neon_gemv::kernel(ty, sdot).unwrap();
                for t in 0..tokens {
                    let mut out = vec![f32::NAN; rows];
                    gemv(n, &case.wq, case.w_row_bytes, &case.rows().token(t), &mut out);
                    for (r, v) in out.iter().enumerate() {
                        assert_eq!(v.to_bits(), want[r][t], "{ty} {name} GEMV: n={n} row {r} token {t}");
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} aarch64 K-quant results checked against the contract on {}", cpu_path());
}

// ---- x86-64 (x86q40): the AVX2 eight-row tile `avx2-rows8` for Q4_0 and Q8_0 and its twin `avx2-rows8-gemv` ----

/// The per-lane arithmetic of the eight-row tiles of Q4_0 and Q8_0 (`avx512vnni-rows8`, `avx2-rows8`) in scalar
/// code, one row after another: per block in order, the exact integer `sum w y` (`w` = `q - 8` for Q4_0), the
/// product `dw dx` of the f32 scales, one fused multiply-add into the row's f32 accumulator (from +0).
#[cfg(target_arch = "x86_64")]
fn rows8_lane_model(ty: GgmlType, n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let (wb, xb) = (ty.block_bytes(), GgmlType::Q8_0.block_bytes());
    for (r, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for b in 0..n / 32 {
            let blk = &w[r * w_row_bytes + b * wb..][..wb];
            let y = &x.bytes[b * xb + 2..(b + 1) * xb];
            let weight = |i: usize| match ty {
                GgmlType::Q4_0 => (blk[2 + i % 16] >> (4 * (i / 16)) & 15) as i32 - 8,
                _ => blk[2 + i] as i8 as i32,
            };
            let dot: i32 = (0..32).map(|i| weight(i) * y[i] as i8 as i32).sum();
            let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])) * x.scales[b];
            acc = (dot as f32).mul_add(d, acc);
        }
        *o = acc;
    }
}

/// [`rows8_lane_model`] of Q4_0 as a decode kernel.
#[cfg(target_arch = "x86_64")]
fn q4_0_rows8_model(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    rows8_lane_model(GgmlType::Q4_0, n, w, w_row_bytes, x, out)
}

/// [`rows8_lane_model`] of Q8_0 as a decode kernel.
#[cfg(target_arch = "x86_64")]
fn q8_0_rows8_model(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    rows8_lane_model(GgmlType::Q8_0, n, w, w_row_bytes, x, out)
}

/// The AVX2 path's kernels of `ty` under `name` (its tile or matrix-vector candidate).
#[cfg(target_arch = "x86_64")]
fn avx2_path_kernel(ty: GgmlType, name: &str) -> DecodeKernel {
    let candidates = decode_kernel_candidates_on(ty, false);
    *candidates.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("{ty}: no {name} on the AVX2 path"))
}

/// `avx2-rows8` is the AVX2 path's prefill kernel of Q4_0 (a candidate for Q8_0), and it and its matrix-vector twin repeat the
/// per-lane arithmetic of the eight-row tiles (the scalar model above) bit for bit, on random, raw and extreme
/// blocks, partial tiles and every tail of the block loops (see [`assert_bit_identical`]). Where the CPU has
/// AVX-512 VNNI the model also equals the `avx512vnni-rows8` tile, so the AVX2 and AVX-512 paths agree.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_rows8_tile_and_twin_repeat_the_rows8_lane_arithmetic() {
    if force_scalar() || !x86_common::avx2_available() {
        return;
    }
    let models: [(GgmlType, GemvFn); 2] = [(GgmlType::Q4_0, q4_0_rows8_model), (GgmlType::Q8_0, q8_0_rows8_model)];
    for (ty, model) in models {
        let model = DecodeKernel { name: "rows8 lane model", run: DecodeFn::Gemv(model), matches_prefill: false };
        // Q8_0 keeps `avx2-row` for prefill (see `tile_kernel_candidates_on`); its eight-row kernels stay candidates.
        let prefill = if ty == GgmlType::Q8_0 { "avx2-row" } else { "avx2-rows8" };
        let candidates = decode_kernel_candidates_on(ty, false);
        assert_eq!(candidates[0].name, prefill, "{ty}: prefill kernel of the AVX2 path");
        for name in ["avx2-rows8", "avx2-rows8-gemv"] {
            let k = avx2_path_kernel(ty, name);
            assert_eq!(k.matches_prefill, prefill == "avx2-rows8", "{ty} {name}");
            assert!(assert_bit_identical(ty, &model, &k, "AVX2 path") > 0);
        }
        if cpu_paths().contains(&true) {
            let tile = decode_kernel_candidates_on(ty, true)[0];
            assert_eq!(tile.name, "avx512vnni-rows8");
            assert!(assert_bit_identical(ty, &model, &tile, path_name(true)) > 0);
        }
    }
}

/// Every shape of an `avx2-rows8` call (1 to 8 rows, 1 to 8 tokens: each token group and partial tile) gives the
/// results of one-row one-token calls and of the scalar lane model, on rows of every block count from 1 to 17 and
/// 176 (a 5632-value row), with extreme blocks: all nibbles 0 or 15 (Q4_0), all quants -128 or 127 (Q8_0), and
/// extreme activations (all quants 127 or -127).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_rows8_tile_shapes_and_extremes() {
    if force_scalar() || !x86_common::avx2_available() {
        return;
    }
    let mut checked = 0;
    for (ty, model) in [(GgmlType::Q4_0, q4_0_rows8_model as GemvFn), (GgmlType::Q8_0, q8_0_rows8_model)] {
        let DecodeFn::Tile(k) = avx2_path_kernel(ty, "avx2-rows8").run else { panic!("{ty}: not a tile") };
        let wb = ty.block_bytes();
        for blocks in (1..=17usize).chain([176]) {
            let n = 32 * blocks;
            let seed = blocks as u64 * 7;
            let ws: Vec<Vec<f32>> = (0..9u64).map(|r| values(seed + r, n, 1.0)).collect();
            let mut xs: Vec<Vec<f32>> = (0..MAX_TILE_TOKENS as u64).map(|t| values(seed + 50 + t, n, 2.0)).collect();
            xs[3] = vec![1.0; n];
            xs[6] = vec![-1.0; n];
            let mut case = TileCase::new(ty, n, &ws, &xs);
            // Extreme weight rows: the smallest and the largest quants, with a large and a small scale.
            let extremes: [(usize, u8, f32); 4] = match ty {
                GgmlType::Q4_0 => [(1, 0x00, 3.0), (2, 0xFF, 3.0), (5, 0xFF, -1e-3), (7, 0x00, 60000.0)],
                _ => [(1, 0x80, 3.0), (2, 0x7F, 3.0), (5, 0x80, -1e-3), (7, 0x7F, 60000.0)],
            };
            for (r, q, scale) in extremes {
                let row = &mut case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                for blk in row.chunks_exact_mut(wb) {
                    blk[..2].copy_from_slice(&f32_to_f16(scale).to_le_bytes());
                    blk[2..].fill(q);
                }
            }
            let x = case.rows();
            for t in 0..xs.len() {
                let mut want = vec![0f32; ws.len()];
                model(n, &case.wq, case.w_row_bytes, &x.token(t), &mut want);
                for r in 0..ws.len() {
                    let one = case.run(&k, n, r, 1, t, 1)[0];
                    assert_eq!(one.to_bits(), want[r].to_bits(), "{ty}: n={n} row {r} token {t}: tile vs model");
                }
            }
            for rows in 1..=k.max_rows {
                for tokens in 1..=MAX_TILE_TOKENS {
                    for (r0, t0) in [(0, 0), (ws.len() - rows, MAX_TILE_TOKENS - tokens)] {
                        let shape = TileShape { rows, tokens, ld: MAX_TILE_TOKENS };
                        let mut out = vec![f32::NAN; rows * MAX_TILE_TOKENS];
                        let mut t = 0;
                        while t < tokens {
                            let nt = (tokens - t).min(k.max_tokens);
                            let shape = TileShape { tokens: nt, ..shape };
                            (k.run)(
                                n,
                                &case.wq[r0 * case.w_row_bytes..],
                                case.w_row_bytes,
                                &x,
                                t0 + t,
                                shape,
                                &mut out[t..],
                            );
                            t += nt;
                        }
                        for r in 0..rows {
                            for t in 0..tokens {
                                let one = case.run(&k, n, r0 + r, 1, t0 + t, 1)[0];
                                let got = out[r * MAX_TILE_TOKENS + t];
                                assert_eq!(
                                    got.to_bits(),
                                    one.to_bits(),
                                    "{ty}: n={n} {rows}x{tokens} tile, row {r} token {t}"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} avx2-rows8 results checked");
}

// ---- The AVX2 eight-row K-quant tiles (`avx2-rows8`, `x86_avx2_rows8_kquant.rs`) and their matrix-vector twins
// (`avx2-rows8-gemv`) ----

/// The per-row arithmetic of the K-quant eight-row tiles (`avx512vnni-rows8` and `avx2-rows8`) in scalar code: per
/// super-block the exact integer sums `T = sum_g scale_g sum (q - offset) y` (and for Q4_K `S = sum_g min_g
/// (bsum_2g + bsum_2g+1)`), then `acc = fma(f32(T), d dx, acc)` (and `acc = fma(-f32(S), dmin dx, acc)`).
#[cfg(target_arch = "x86_64")]
fn kquant_rows8_model(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wb_bytes, xb_bytes) = (ty.block_bytes(), GgmlType::Q8_K.block_bytes());
    let mut acc = 0f32;
    for b in 0..n / 256 {
        let (wb, xb) = (&w[b * wb_bytes..(b + 1) * wb_bytes], &x[b * xb_bytes..(b + 1) * xb_bytes]);
        let dx = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
        let y = |i: usize| xb[4 + i] as i8 as i64;
        let bsum = |g: usize| i16::from_le_bytes([xb[260 + 2 * g], xb[261 + 2 * g]]) as i64;
        match ty {
            GgmlType::Q4_K => {
                let (mut t, mut s) = (0i64, 0i64);
                for g in 0..8 {
                    let (scale, min) = quant::k4_scale_min(g, &wb[4..16]);
                    let dot: i64 = (0..32)
                        .map(|l| {
                            let byte = wb[16 + 32 * (g / 2) + l];
                            (if g % 2 == 0 { byte & 15 } else { byte >> 4 }) as i64 * y(32 * g + l)
                        })
                        .sum();
                    t += scale as i64 * dot;
                    s += min as i64 * (bsum(2 * g) + bsum(2 * g + 1));
                }
                acc = (t as f32).mul_add(quant::f16_at(wb, 0) * dx, acc);
                acc = (-(s as f32)).mul_add(quant::f16_at(wb, 2) * dx, acc);
            }
            GgmlType::Q6_K => {
                let t: i64 = (0..256)
                    .map(|i| {
                        let (half, quarter, l) = (i / 128, i % 128 / 32, i % 32);
                        let low = (wb[64 * half + 32 * (quarter % 2) + l] >> (4 * (quarter / 2))) & 15;
                        let high = (wb[128 + 32 * half + l] >> (2 * quarter)) & 3;
                        wb[192 + i / 16] as i8 as i64 * ((low | high << 4) as i64 - 32) * y(i)
                    })
                    .sum();
                acc = (t as f32).mul_add(quant::f16_at(wb, 208) * dx, acc);
            }
            _ => unreachable!("{ty} has no eight-row K-quant tile"),
        }
    }
    acc
}

/// The `avx2-rows8` tiles and their `avx2-rows8-gemv` twins equal the scalar model of the tiles' arithmetic
/// ([`kquant_rows8_model`]) bit for bit, and the scalar reference within rounding: rows of 256, 2048 and 5632
/// values, full tiles of eight rows by eight tokens, partial tiles of 1..7 rows and every token count from 1 to 8
/// (so one token and eight tokens give the same bits), random and zero weights and the extremes (Q4_K: all nibbles
/// 15 with all six-bit scales and mins 63; Q6_K: all quants 63 and all quants 0, with scales 127 and -128) against
/// random, zero and extreme activations (every quant 127, every quant -128, and both alternating).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_rows8_kquant_tiles_equal_their_scalar_model_bit_for_bit() {
    if force_scalar() || !x86_common::avx2_available() {
        return;
    }
    let mut checked = 0;
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let tile = x86_avx2_rows8_kquant::kernel(ty).unwrap();
        let gemv = x86_avx2_avx512vnni_gemv::avx2_rows8(ty).unwrap();
        assert_eq!((tile.max_rows, tile.max_tokens), (8, MAX_TILE_TOKENS));
        for (seed, n) in [(1u64, 256usize), (2, 2048), (3, 5632)] {
            // Twelve rows: random at three scales, zero, and the extremes (written as raw blocks below).
            let rows = 12;
            let ws: Vec<Vec<f32>> =
                (0..rows).map(|r| values(seed + 300 + r as u64, n, [1e-3, 1.0, 50.0][r % 3])).collect();
            let xs: Vec<Vec<f32>> = (0..MAX_TILE_TOKENS + 2).map(|t| values(seed + 400 + t as u64, n, 1.0)).collect();
            let mut case = TileCase::new(ty, n, &ws, &xs);
            let (wb_bytes, row_bytes) = (ty.block_bytes(), case.w_row_bytes);
            // Raw weight blocks: (fill byte of the quants, fill byte of the scales) with finite f16 fields.
            let extremes: &[(usize, u8, u8)] = match ty {
                GgmlType::Q4_K => &[(3, 0, 0), (5, 0xFF, 0xFF), (9, 0xFF, 0xFF)],
                _ => &[(3, 0, 0), (5, 0xFF, 0x7F), (8, 0x00, 0x80), (9, 0xFF, 0x80), (10, 0x00, 0x7F)],
            };
            for &(r, quants, scales) in extremes {
                for (b, block) in case.wq[r * row_bytes..(r + 1) * row_bytes].chunks_exact_mut(wb_bytes).enumerate() {
                    let d = if quants == 0 && scales == 0 { 0.0 } else { 0.5 + b as f32 * 0.25 };
                    match ty {
                        GgmlType::Q4_K => {
                            block[4..16].fill(scales);
                            block[16..].fill(quants);
                            quant::put_f16(block, 0, d);
                            quant::put_f16(block, 2, -0.75 * d);
                        }
                        _ => {
                            block[..192].fill(quants);
                            block[192..208].fill(scales);
                            quant::put_f16(block, 208, d);
                        }
                    }
                }
            }
            // Raw activation blocks: every quant 127, every quant -128, alternating 127 / -128, with their sums.
            let xb_bytes = GgmlType::Q8_K.block_bytes();
            for (t, pattern) in [(2usize, [127i8, 127]), (3, [-128, -128]), (6, [127, -128]), (7, [-128, 127])] {
                for (b, block) in
                    case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes].chunks_exact_mut(xb_bytes).enumerate()
                {
                    block[..4].copy_from_slice(&(0.01 * (b + 1) as f32).to_le_bytes());
                    for i in 0..256 {
                        block[4 + i] = pattern[i % 2] as u8;
                    }
                    for g in 0..16 {
                        let sum = 8 * (pattern[0] as i16 + pattern[1] as i16);
                        block[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
                    }
                }
            }
            let want: Vec<Vec<u32>> = (0..xs.len())
                .map(|t| {
                    let x = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                    (0..rows)
                        .map(|r| kquant_rows8_model(ty, n, &case.wq[r * row_bytes..(r + 1) * row_bytes], x).to_bits())
                        .collect()
                })
                .collect();
            // The model against the scalar reference (another order of the float steps).
            for (t, row) in want.iter().enumerate() {
                let x = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                let mut xf = vec![0f32; n];
                quant::dequantize_row(GgmlType::Q8_K, x, &mut xf).unwrap();
                for (r, bits) in row.iter().enumerate() {
                    let wq = &case.wq[r * row_bytes..(r + 1) * row_bytes];
                    let mut wf = vec![0f32; n];
                    quant::dequantize_row(ty, wq, &mut wf).unwrap();
                    let magnitude: f32 = wf.iter().zip(&xf).map(|(a, b)| (a * b).abs()).sum();
                    let (got, reference) = (f32::from_bits(*bits), quant::vec_dot(ty, n, wq, x).unwrap());
                    assert!(
                        (got - reference).abs() <= 1e-5 * magnitude + 1e-6,
                        "{ty}: n={n} row {r} token {t}: model {got}, reference {reference}"
                    );
                }
            }
            // Tiles of every row count 1..8 at every start, with every token count 1..8.
            for r0 in 0..rows {
                for take in 1..=(rows - r0).min(8) {
                    for (t0, tokens) in
                        [(0usize, 8usize), (1, 8), (2, 7), (0, 6), (3, 5), (4, 4), (5, 3), (6, 2), (9, 1)]
                    {
                        let got = case.run(&tile, n, r0, take, t0, tokens);
                        for r in 0..take {
                            for t in 0..tokens {
                                assert_eq!(
                                    got[r * tokens + t].to_bits(),
                                    want[t0 + t][r0 + r],
                                    "{ty} avx2-rows8: n={n} tile of {take} rows from {r0}, {tokens} tokens from {t0}: \
                                     row {} token {}",
                                    r0 + r,
                                    t0 + t
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
            // The twin, over runs of rows from every start.
            for t in 0..xs.len() {
                for r0 in [0, 1, 5] {
                    let mut out = vec![f32::NAN; rows - r0];
                    gemv(n, &case.wq[r0 * row_bytes..], row_bytes, &case.rows().token(t), &mut out);
                    for (r, v) in out.iter().enumerate() {
                        assert_eq!(
                            v.to_bits(),
                            want[t][r0 + r],
                            "{ty} avx2-rows8-gemv: n={n} row {} token {t}",
                            r0 + r
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} avx2-rows8 K-quant results checked");
}

// ---- aarch64 (i8mm): the `smmla` tiles `neon-i8mm-4x8` for Q4_0, Q4_1, Q5_0 and Q8_0 (`aarch64_neon_tiles_i8mm.rs`),
// Q4_K (`aarch64_neon_tiles_i8mm_k.rs`) and Q6_K (`aarch64_neon_tiles_i8mm_q6k.rs`) ----

/// The contract of the aarch64 Q4_0, Q4_1, Q5_0 and Q8_0 tiles and their GEMV entries, in scalar code: per 32-value
/// block the exact integer sum `isum` of weights times activation quants, then `acc = fma(acc, f32(isum), d_w *
/// d_x)` with `d_x` the activations' prepared scale of the block; Q4_1 also `mins = fma(mins, m_w, s_x)` with the
/// activations' sum term `s_x` (Q8_1), and `acc + mins` at the end.
#[cfg(target_arch = "aarch64")]
fn legacy_contract(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let f16 = |b: &[u8]| crate::half_float::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    let (x_bytes, wb) = (quant::vec_dot_type(ty).block_bytes(), ty.block_bytes());
    let (mut acc, mut mins) = (0f32, 0f32);
    for b in 0..n / 32 {
        let xb = &x[b * x_bytes..(b + 1) * x_bytes];
        let weight = |i: usize| match ty {
            GgmlType::Q4_1 => {
                let byte = w[b * 20 + 4 + i % 16];
                (if i < 16 { byte & 15 } else { byte >> 4 }) as i32
            }
            GgmlType::Q4_0 => {
                let byte = w[b * 18 + 2 + i % 16];
                (if i < 16 { byte & 15 } else { byte >> 4 }) as i32 - 8
            }
            GgmlType::Q5_0 => {
                let (byte, qh) = (w[b * 22 + 6 + i % 16], w[b * 22 + 2 + i / 8]);
                let nibble = if i < 16 { byte & 15 } else { byte >> 4 };
                (nibble | ((qh >> (i % 8)) & 1) << 4) as i32 - 16
            }
            _ => w[b * 34 + 2 + i] as i8 as i32,
        };
        let isum: i32 = (0..32).map(|i| weight(i) * xb[x_bytes - 32 + i] as i8 as i32).sum();
        acc = (isum as f32).mul_add(f16(&w[b * wb..]) * f16(xb), acc);
        if ty == GgmlType::Q4_1 {
            mins = f16(&w[b * wb + 2..]).mul_add(f16(&xb[2..]), mins);
        }
    }
    if ty == GgmlType::Q4_1 {
        acc + mins
    } else {
        acc
    }
}

/// The `neon-i8mm-4x8` tile of `ty`, the `sdot` tile it must equal (`neon-sdot-4x8`; Q4_1: `neon-sdot-4x4`) and
/// that tile's GEMV entry (the decode kernel), or `None` (with the reason printed) when this CPU has no FEAT_I8MM.
#[cfg(target_arch = "aarch64")]
fn i8mm_kernels(ty: GgmlType) -> Option<(TileKernel, TileKernel, GemvFn)> {
    if !aarch64_neon_tiles_i8mm::available() {
        eprintln!("skipped: this CPU ({}) has no FEAT_I8MM, the neon-i8mm-4x8 tiles cannot run", cpu_path());
        return None;
    }
    let (name, i8mm) = aarch64_neon_tiles_i8mm::kernel(ty).unwrap();
    assert_eq!(name, "neon-i8mm-4x8");
    let (name, sdot) = aarch64_neon_tiles::kernel(ty, true).unwrap();
    assert_eq!(name, if ty == GgmlType::Q4_1 { "neon-sdot-4x4" } else { "neon-sdot-4x8" });
    Some((i8mm, sdot, aarch64_neon_gemv::kernel(ty, true).unwrap()))
}

/// All results `[row][token]` of `case` (`rows` weight rows, `tokens` activation rows) by tile `k` called as a
/// matmul calls it with tiles of `row_step` rows by `token_step` tokens (partial ones at the ends).
#[cfg(target_arch = "aarch64")]
fn tiled_bits(
    case: &TileCase,
    k: &TileKernel,
    n: usize,
    (rows, tokens): (usize, usize),
    steps: (usize, usize),
) -> Vec<Vec<u32>> {
    let mut out = vec![vec![0u32; tokens]; rows];
    for r0 in (0..rows).step_by(steps.0) {
        for t0 in (0..tokens).step_by(steps.1) {
            let (nr, nt) = (steps.0.min(rows - r0), steps.1.min(tokens - t0));
            let res = case.run(k, n, r0, nr, t0, nt);
            for r in 0..nr {
                for t in 0..nt {
                    out[r0 + r][t0 + t] = res[r * nt + t].to_bits();
                }
            }
        }
    }
    out
}

/// The `neon-i8mm-4x8` tiles equal their contract ([`legacy_contract`], [`k_quant_contract`]), the `sdot` tile
/// (`neon-sdot-4x8`, Q4_1's `neon-sdot-4x4`) and its GEMV entry bit for bit (and the scalar reference within
/// rounding), on rows of 256, 2048 and 5632 values (random, zero, quantized from +-65000, raw random blocks, all
/// quant and scale bits set; Q4_K also all scale and min bits set with zero nibbles; Q6_K instead every quant 63 with
/// scales alternating -128 and 127, and every quant 0 with scales -128) against random, zero and constant
/// activations (K-quants also every quant -128 or 127 with unit scales), called with every tile shape from 1 to 16
/// rows by 1 to 8 tokens over 17 rows and 9 tokens (so partial tiles of every row count and odd token counts).
/// Swapping the float steps (Q4_0 and Q5_0: `(f32(isum) * d_w) * d_x`; Q4_1: its min terms added into `acc` instead
/// of their own accumulator; Q4_K: the two `fma` of a super-block; Q6_K: `fma(acc, f32(isum) * d, d_x)`) fails it.
#[cfg(target_arch = "aarch64")]
#[test]
fn i8mm_tiles_equal_the_sdot_tile_and_its_gemv_bit_for_bit() {
    let mut checked = 0;
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        let Some((i8mm, sdot, gemv)) = i8mm_kernels(ty) else { return };
        let kquant = matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K);
        let contract = if kquant { k_quant_contract } else { legacy_contract };
        for (seed, n) in [(1u64, 256usize), (2, 2048), (3, 5632)] {
            let (rows, tokens) = (17usize, 9usize);
            let scale = [1e-3f32, 1.0, 50.0][seed as usize % 3];
            let mut ws: Vec<Vec<f32>> = (0..rows as u64).map(|r| values(seed * 7 + 300 + r, n, scale)).collect();
            ws[2] = vec![0.0; n];
            ws[9] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
            let mut xs: Vec<Vec<f32>> = (0..tokens as u64).map(|t| values(seed * 11 + 400 + t, n, scale)).collect();
            xs[1] = vec![0.0; n];
            xs[4] = vec![-scale; n];
            let mut case = TileCase::new(ty, n, &ws, &xs);
            let row_bytes = case.w_row_bytes;
            // Raw random blocks in rows 5 and 11 (every quant and packed scale bit pattern), all quant and scale
            // bits set in row 14 (Q6_K: scales alternating -128 and 127), for Q4_K all scale and min bits set with
            // zero nibbles in row 15 (Q6_K: zero quants with scales -128), with finite f16 fields.
            let mut bits = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            let raw: &[usize] = if kquant { &[5, 11, 14, 15] } else { &[5, 11, 14] };
            let q6k_scale = |at: usize| ty == GgmlType::Q6_K && (192..208).contains(&at);
            for &r in raw {
                for (i, b) in case.wq[r * row_bytes..(r + 1) * row_bytes].iter_mut().enumerate() {
                    bits ^= bits << 13;
                    bits ^= bits >> 7;
                    bits ^= bits << 17;
                    let at = i % ty.block_bytes();
                    *b = if let Some(&f) = f16_fields(ty).iter().find(|&&f| at == f || at == f + 1) {
                        f32_to_f16(scale * ((bits >> 40) as f32 / (1u64 << 24) as f32 - 0.5)).to_le_bytes()[at - f]
                    } else if r == 14 && q6k_scale(at) {
                        [0x80, 0x7F][at % 2]
                    } else if r == 15 && q6k_scale(at) {
                        0x80
                    } else if r == 14 || (r == 15 && ty == GgmlType::Q4_K && at < 16) {
                        0xFF
                    } else if r == 15 {
                        0x00
                    } else {
                        (bits >> 32) as u8
                    };
                }
            }
            // K-quants: every activation quant -128 in token 5 and 127 in token 6, unit scales, their block sums.
            let extreme = if kquant { vec![(5usize, -128i8), (6, 127)] } else { vec![] };
            for &(t, q) in &extreme {
                for xb in case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes].chunks_exact_mut(292) {
                    xb[..4].copy_from_slice(&1f32.to_le_bytes());
                    xb[4..260].fill(q as u8);
                    for k in 0..16 {
                        xb[260 + 2 * k..262 + 2 * k].copy_from_slice(&(16 * q as i16).to_le_bytes());
                    }
                }
            }
            let want = tiled_bits(&case, &sdot, n, (rows, tokens), (sdot.max_rows, sdot.max_tokens));
            for (r, row) in want.iter().enumerate() {
                let wq = &case.wq[r * row_bytes..(r + 1) * row_bytes];
                for (t, v) in row.iter().enumerate() {
                    let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                    assert_eq!(
                        *v,
                        contract(ty, n, wq, xq).to_bits(),
                        "{ty} neon-sdot-4x8 breaks the contract: n={n} row {r} token {t}"
                    );
                    if raw.contains(&r) || extreme.iter().any(|e| e.0 == t) {
                        continue; // `ws[r]` or `xs[t]` is not what the row holds
                    }
                    let reference = quant::vec_dot(ty, n, wq, xq).unwrap();
                    let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                    let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                    let got = f32::from_bits(*v);
                    assert!((reference - got).abs() <= tol, "{ty}: n={n} row {r} token {t}: {reference} vs {got}");
                }
            }
            for (t, wants) in (0..tokens).map(|t| (t, want.iter().map(|row| row[t]).collect::<Vec<u32>>())) {
                let mut out = vec![f32::NAN; rows];
                gemv(n, &case.wq, row_bytes, &case.rows().token(t), &mut out);
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, wants, "{ty} GEMV entry: n={n} token {t}");
            }
            for row_step in 1..=i8mm.max_rows {
                for token_step in 1..=i8mm.max_tokens {
                    let got = tiled_bits(&case, &i8mm, n, (rows, tokens), (row_step, token_step));
                    for (r, (a, b)) in want.iter().zip(&got).enumerate() {
                        let t = a.iter().zip(b).position(|(x, y)| x != y);
                        assert!(
                            t.is_none(),
                            "{ty} neon-i8mm-4x8: n={n}, tiles of {row_step}x{token_step}: row {r} token {} is {} instead of {}",
                            t.unwrap(),
                            f32::from_bits(b[t.unwrap()]),
                            f32::from_bits(a[t.unwrap()])
                        );
                        checked += a.len();
                    }
                }
            }
        }
    }
    eprintln!("{checked} neon-i8mm-4x8 results compared on {}", cpu_path());
}

/// At the extreme quants (Q4_0 and Q4_1 nibbles 0 or 15, Q5_0 quants 0 or 31, Q8_0 quants -128 or 127, against
/// activation quants -128 or 127 with unit scales and Q4_1's min 8, so that every block sum is exact in f32), the
/// `neon-i8mm-4x8` tiles equal the scalar reference exactly and the `sdot` tile bit for bit.
#[cfg(target_arch = "aarch64")]
#[test]
fn i8mm_tiles_are_exact_at_the_extreme_quants() {
    let one = 0x3C00u16.to_le_bytes(); // f16 1.0
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0] {
        let Some((i8mm, sdot, _)) = i8mm_kernels(ty) else { return };
        let n = 256;
        let fills: [u8; 2] = if ty == GgmlType::Q8_0 { [0x80, 0x7F] } else { [0x00, 0xFF] };
        let min = ty == GgmlType::Q4_1;
        let weights = |k: usize| -> Vec<u8> {
            let mut b = vec![fills[k % 2]; ty.block_bytes()];
            b[..2].copy_from_slice(&one);
            if min {
                b[2..4].copy_from_slice(&f32_to_f16(8.0).to_le_bytes());
            }
            b.repeat(n / 32)
        };
        let (xt, spb) = (quant::vec_dot_type(ty), if min { 2 } else { 1 });
        let acts = |q: u8| -> Vec<u8> {
            let mut b = vec![q; xt.block_bytes()];
            b[..2].copy_from_slice(&one);
            if min {
                b[2..4].copy_from_slice(&f32_to_f16(32.0 * q as i8 as f32).to_le_bytes());
                // s = d * sum(q)
            }
            b.repeat(n / 32)
        };
        let (rows, tokens) = (7usize, 7usize);
        let mut case = TileCase::new(ty, n, &vec![vec![0.0; n]; rows], &vec![vec![0.0; n]; tokens]);
        case.wq = (0..rows).flat_map(|r| weights(r * 5 / 3)).collect();
        case.xq = (0..tokens).flat_map(|t| acts([0x80, 0x7F][t * 3 / 2 % 2])).collect();
        for t in 0..tokens {
            let row = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
            let scales = &mut case.scales[t * 8 * spb..(t + 1) * 8 * spb];
            prepare_activations(xt, row, scales, &mut case.sums[t * 8..(t + 1) * 8]);
        }
        let want = tiled_bits(&case, &sdot, n, (rows, tokens), (sdot.max_rows, sdot.max_tokens));
        let got = tiled_bits(&case, &i8mm, n, (rows, tokens), (i8mm.max_rows, i8mm.max_tokens));
        assert_eq!(got, want, "{ty}: neon-i8mm-4x8 differs from the sdot tile");
        for (r, row) in got.iter().enumerate() {
            for (t, v) in row.iter().enumerate() {
                let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                let reference = quant::vec_dot(ty, n, wq, &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes]);
                assert_eq!(f32::from_bits(*v), reference.unwrap(), "{ty}: row {r} token {t}");
                assert!(f32::from_bits(*v).abs() >= n as f32 * 7.0 * 127.0, "{ty}: row {r} token {t} not extreme");
            }
        }
    }
}

/// Where FEAT_I8MM is, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K prefill with `neon-i8mm-4x8` and decode with the `sdot`
/// GEMV entry under its name (bit-identical), the `sdot` tile (`neon-sdot-4x8`, Q4_1's `neon-sdot-4x4`) stays a
/// candidate that `PICOLM_KERNEL` can force, and the kernel path says `aarch64-neon-i8mm`.
#[cfg(target_arch = "aarch64")]
#[test]
fn i8mm_tiles_are_the_prefill_kernels_where_the_cpu_has_i8mm() {
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        if i8mm_kernels(ty).is_none() {
            return;
        }
        let candidates = decode_kernel_candidates(ty);
        assert_eq!(prefill_kernel(ty).name, "neon-i8mm-4x8", "{ty}");
        assert!(matches!(candidates[0].run, DecodeFn::Gemv(_)), "{ty}: decode is not the GEMV entry");
        assert!(DECODE_KERNEL_NAMES.contains(&"neon-i8mm-4x8"));
        let name = if ty == GgmlType::Q4_1 { "neon-sdot-4x4" } else { "neon-sdot-4x8" };
        let sdot = candidates.iter().find(|k| k.name == name);
        assert!(sdot.is_some_and(|k| matches!(k.run, DecodeFn::Tile(_))), "{ty}: {name} cannot be forced");
    }
    assert_eq!(cpu_path(), "aarch64-neon-i8mm");
}
