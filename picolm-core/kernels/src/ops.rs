//! Element-wise operations of the Llama forward pass (RMSNorm, residual add, SwiGLU, argmax, the rotation of RoPE
//! and the inner step of attention), written to follow ggml's numerics (f64 sums in RMSNorm) so results track
//! llama.cpp closely. They run for every token and layer: here, in the kernel crate, they keep opt-level 3 in
//! release builds (picolm-core re-exports this module as `compute::ops`). The ones called from picolm-core's loops
//! are `#[inline(never)]`: code inlined into a caller is optimised as the caller is, and picolm-core's release
//! opt-level is "s" (inlined, RoPE and the attention step cost 1.9 % more instructions in `bench`).

/// `out = x / sqrt(mean(x^2) + eps) * weight`.
#[inline(never)]
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// SiLU-gated product used by SwiGLU: `gate[i] = silu(gate[i]) * up[i]`, with `silu(v) = v / (1 + exp(-v))` and
/// [`exp`]. Four values at a time with SSE2 (x86-64) or NEON (aarch64), by the same operations as the scalar code,
/// so every element gets the bits of the scalar formula on every target.
#[inline(never)]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    // Values before `vector_end` go four at a time where there is a vector form, the rest one by one.
    let vector_end = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) { n / 4 * 4 } else { 0 };
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    for (g, u) in gate[..vector_end].chunks_exact_mut(4).zip(up.chunks_exact(4)) {
        // SAFETY: `g` and `u` hold four values each; SSE2 and NEON are part of the x86-64 and aarch64 baselines.
        unsafe { swiglu4(g.as_mut_ptr(), u.as_ptr()) };
    }
    for (g, &u) in gate[vector_end..n].iter_mut().zip(&up[vector_end..n]) {
        let v = *g;
        *g = v / (1.0 + exp(-v)) * u;
    }
}

/// `1 + r + q` for `|q| <= |r| <= 1/2`, rounded once (nearly): the two additions' rounding errors are recovered exactly
/// (Fast2Sum) and added back, so [`exp`] is within about half an ulp, as libm's `expf` is, and gives its bits for
/// nearly every input.
#[inline(always)]
fn one_plus(r: f32, q: f32) -> f32 {
    let s = r + q;
    let e1 = (r - s) + q;
    let u = 1.0 + s;
    let e2 = (1.0 - u) + s;
    u + (e2 + e1)
}

/// The constants of [`exp`]: 1.5 * 2^23 (adding and subtracting it rounds a float below 2^22 in magnitude to the
/// nearest integer), log2(e), ln 2 in two parts (`LN2_HI` has 9 significant bits, so `n * LN2_HI` is exact for
/// `|n| <= 127`), the input range, and the polynomial's coefficients from the highest degree down (Cephes `expf`).
mod exp_constants {
    pub(super) const ROUND: f32 = 12_582_912.0;
    pub(super) const LOG2_E: f32 = std::f32::consts::LOG2_E;
    pub(super) const LN2_HI: f32 = 0.693_359_4;
    pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
    pub(super) const LO: f32 = -87.0;
    pub(super) const HI: f32 = 88.0;
    pub(super) const P: [f32; 6] = [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
}

/// [`swiglu`] on the four values at `g` and `u` (NEON): [`exp`]'s steps lane by lane.
///
/// # Safety
/// Four values are readable at `u` and readable and writable at `g`.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn swiglu4(g: *mut f32, u: *const f32) {
    use exp_constants::*;
    use std::arch::aarch64::*;
    let c = vdupq_n_f32;
    let v = vld1q_f32(g);
    // maxnm: NaN becomes LO, as in the scalar selects.
    let x = vminnmq_f32(vmaxnmq_f32(vnegq_f32(v), c(LO)), c(HI));
    let t = vaddq_f32(vmulq_f32(x, c(LOG2_E)), c(ROUND));
    let n = vsubq_f32(t, c(ROUND));
    let r = vsubq_f32(vsubq_f32(x, vmulq_f32(n, c(LN2_HI))), vmulq_f32(n, c(LN2_LO)));
    let mut p = c(P[0]);
    for &k in &P[1..] {
        p = vaddq_f32(vmulq_f32(p, r), c(k));
    }
    let (q, one) = (vmulq_f32(p, vmulq_f32(r, r)), c(1.0));
    let s = vaddq_f32(r, q);
    let e1 = vaddq_f32(vsubq_f32(r, s), q);
    let sum = vaddq_f32(one, s);
    let e2 = vaddq_f32(vsubq_f32(one, sum), s);
    let p = vaddq_f32(sum, vaddq_f32(e2, e1));
    let biased = vaddq_u32(vsubq_u32(vreinterpretq_u32_f32(t), vdupq_n_u32(ROUND.to_bits())), vdupq_n_u32(127));
    let e = vmulq_f32(p, vreinterpretq_f32_u32(vshlq_n_u32::<23>(biased)));
    let out = vmulq_f32(vdivq_f32(v, vaddq_f32(c(1.0), e)), vld1q_f32(u));
    vst1q_f32(g, out);
}

/// [`swiglu`] on the four values at `g` and `u` (SSE2): [`exp`]'s steps lane by lane.
///
/// # Safety
/// Four values are readable at `u` and readable and writable at `g`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn swiglu4(g: *mut f32, u: *const f32) {
    use exp_constants::*;
    use std::arch::x86_64::*;
    let c = |v: f32| _mm_set1_ps(v);
    let v = _mm_loadu_ps(g);
    // max_ps(x, LO) is `x > LO ? x : LO` (NaN becomes LO), min_ps(x, HI) is `x < HI ? x : HI`: the scalar selects.
    let x = _mm_min_ps(_mm_max_ps(_mm_xor_ps(v, c(-0.0)), c(LO)), c(HI));
    let t = _mm_add_ps(_mm_mul_ps(x, c(LOG2_E)), c(ROUND));
    let n = _mm_sub_ps(t, c(ROUND));
    let r = _mm_sub_ps(_mm_sub_ps(x, _mm_mul_ps(n, c(LN2_HI))), _mm_mul_ps(n, c(LN2_LO)));
    let mut p = c(P[0]);
    for &k in &P[1..] {
        p = _mm_add_ps(_mm_mul_ps(p, r), c(k));
    }
    let (q, one) = (_mm_mul_ps(p, _mm_mul_ps(r, r)), c(1.0));
    let s = _mm_add_ps(r, q);
    let e1 = _mm_add_ps(_mm_sub_ps(r, s), q);
    let sum = _mm_add_ps(one, s);
    let e2 = _mm_add_ps(_mm_sub_ps(one, sum), s);
    let p = _mm_add_ps(sum, _mm_add_ps(e2, e1));
    let biased =
        _mm_add_epi32(_mm_sub_epi32(_mm_castps_si128(t), _mm_set1_epi32(ROUND.to_bits() as i32)), _mm_set1_epi32(127));
    let e = _mm_mul_ps(p, _mm_castsi128_ps(_mm_slli_epi32::<23>(biased)));
    let out = _mm_mul_ps(_mm_div_ps(v, _mm_add_ps(c(1.0), e)), _mm_loadu_ps(u));
    _mm_storeu_ps(g, out);
}

/// `e^x` for the forward pass (SiLU and the attention softmax), within 1 ulp of the exact value for `x` in
/// `[-87, 88]` (0.77 ulp at worst, measured) and equal to glibc's `expf` for about 95 % of inputs; below that range
/// the result is `exp(-87)` (about 1.6e-38), above it `exp(88)` (about 1.7e38); NaN gives `exp(-87)`.
///
/// The Cephes `expf` method: `x = n ln 2 + r` with `n` rounded to nearest (`|r| <= ln 2 / 2`; `ln 2` in two parts,
/// so `r` is exact to a few ulp), a degree-7 polynomial for `e^r` whose last two additions are compensated
/// ([`one_plus`]), and `2^n` put into the exponent bits. Only IEEE multiplications, additions and bit operations, in
/// a fixed order, no fused multiply-add and no table: the same bits on every target and in every lane, scalar
/// (armv7, riscv64, the tails) or four at a time (SSE2, NEON: [`swiglu`]), so a model's output does not depend on
/// the CPU. No denormal is produced or consumed, so flush-to-zero units agree too. It replaces libm's `expf`, a
/// call per value that cannot be vectorised (on Cortex-A76 under qemu: SiLU and softmax took 1.39 M instructions per
/// SmolLM2-135M prefill token through libm). Without the compensation (an error of up to 2 ulp) the greedy
/// continuations of the Q4_1 golden test moved off llama.cpp's early: its near-ties are that close.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    use exp_constants::*;
    // Selects, not f32::clamp (which keeps NaN): NaN fails the first test and becomes LO.
    let x = if x > LO { x } else { LO };
    let x = if x < HI { x } else { HI };
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for &k in &P[1..] {
        p = p * r + k;
    }
    let p = one_plus(r, p * (r * r));
    // n is an integer in [-126, 127], so 2^n is a normal float; `t`'s low mantissa bits hold n + 2^22 (ROUND's
    // own mantissa), read as an integer (as the vector forms do: they have no saturating conversion).
    let biased = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// `acc[i] += x[i]`.
#[inline(never)]
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Tokens `t0 .. t0 + nt` of results stored by row (`by_row[r * n_tokens + t]`, `rows` rows) into token-major
/// `out[i * rows + r]`, where `nt = out.len() / rows`: the last step of a batched matmul, whose tiles store by row.
/// Blocks of four rows by four tokens are transposed in registers (SSE2 on x86-64, NEON on aarch64: four loads, eight
/// shuffles and four stores for sixteen values, where the scalar loop took about 7.5 instructions per value); the
/// edges and other targets copy value by value. A pure data move: the same values on every path.
///
/// Panics if `out.len()` is not a multiple of `rows`, if the tokens pass `n_tokens` or `by_row` is shorter than
/// `rows * n_tokens`.
#[inline(never)]
pub fn rows_to_tokens(by_row: &[f32], rows: usize, n_tokens: usize, t0: usize, out: &mut [f32]) {
    if rows == 0 {
        return;
    }
    assert!(out.len().is_multiple_of(rows), "{} outputs for {rows} rows", out.len());
    let nt = out.len() / rows;
    assert!(t0 + nt <= n_tokens && by_row.len() >= rows * n_tokens, "tokens {t0}..{} of {n_tokens}", t0 + nt);
    let (rows4, nt4) =
        (rows / 4 * 4, if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) { nt / 4 * 4 } else { 0 });
    for r in (0..rows4).step_by(4) {
        for i in (0..nt4).step_by(4) {
            // SAFETY: rows r..r + 4 <= rows and tokens t0 + i .. t0 + i + 4 <= t0 + nt <= n_tokens are inside
            // `by_row` (asserted above), and the outputs (i + j) * rows + r + k with j, k < 4 are below nt * rows.
            unsafe {
                transpose4(
                    by_row.as_ptr().add(r * n_tokens + t0 + i),
                    n_tokens,
                    out.as_mut_ptr().add(i * rows + r),
                    rows,
                )
            };
        }
        for i in nt4..nt {
            for k in r..r + 4 {
                out[i * rows + k] = by_row[k * n_tokens + t0 + i];
            }
        }
    }
    for r in rows4..rows {
        for i in 0..nt {
            out[i * rows + r] = by_row[r * n_tokens + t0 + i];
        }
    }
}

/// The 4x4 transpose of f32 from `src` (four runs of four, `src_stride` apart) to `dst` (`dst_stride` apart): `dst[j
/// * dst_stride + k] = src[k * src_stride + j]`.
///
/// # Safety
/// The sixteen source and destination values are in bounds.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn transpose4(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::aarch64::*;
    let v = std::array::from_fn(|k| vld1q_f32(src.add(k * src_stride)));
    for (j, row) in crate::simd::transpose_f32(v).into_iter().enumerate() {
        vst1q_f32(dst.add(j * dst_stride), row);
    }
}

/// See the aarch64 form.
///
/// # Safety
/// The sixteen source and destination values are in bounds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose4(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    let v: [__m128; 4] = std::array::from_fn(|k| _mm_loadu_ps(src.add(k * src_stride)));
    let (t0, t1) = (_mm_unpacklo_ps(v[0], v[1]), _mm_unpacklo_ps(v[2], v[3])); // a0 b0 a1 b1, c0 d0 c1 d1
    let (t2, t3) = (_mm_unpackhi_ps(v[0], v[1]), _mm_unpackhi_ps(v[2], v[3])); // a2 b2 a3 b3, c2 d2 c3 d3
    _mm_storeu_ps(dst, _mm_movelh_ps(t0, t1));
    _mm_storeu_ps(dst.add(dst_stride), _mm_movehl_ps(t1, t0));
    _mm_storeu_ps(dst.add(2 * dst_stride), _mm_movelh_ps(t2, t3));
    _mm_storeu_ps(dst.add(3 * dst_stride), _mm_movehl_ps(t3, t2));
}

/// Never called: blocks are copied value by value on other targets (`nt4` is 0).
///
/// # Safety
/// Not callable.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
unsafe fn transpose4(_: *const f32, _: usize, _: *mut f32, _: usize) {
    unreachable!("no 4x4 transpose on this target")
}

/// Index of the largest value (the lowest index on ties); `None` for an empty slice.
pub fn argmax(x: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// Rotates the pairs `(head[2i], head[2i + 1])` for `i < cos.len()` by the angles whose cosines and sines are
/// `cos[i]` and `sin[i]` (RoPE, adjacent-pair layout); the rest of `head` is left unchanged.
#[inline(never)]
pub fn rope_rotate(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    debug_assert_eq!(cos.len(), sin.len());
    for (i, pair) in head[..cos.len() * 2].chunks_exact_mut(2).enumerate() {
        let (x0, x1) = (pair[0], pair[1]);
        pair[0] = x0 * cos[i] - x1 * sin[i];
        pair[1] = x0 * sin[i] + x1 * cos[i];
    }
}

/// One cached position of causal attention with an online softmax (single pass, no score buffer), for the query
/// heads that share one KV head. `q` and `out` hold `out.len() / key.len()` heads of `key.len()` values. For head
/// `j`, the score `s = (q_j · key) * scale` updates the running maximum `max[j]` and the running sum `sum[j]` of
/// `exp(score - max)`, and `out_j` accumulates `exp(s - max[j]) * value` (rescaled when the maximum grows). Start
/// with `max` at negative infinity and `sum` and `out` at zero; after the last position `out_j / sum[j]` is the
/// attention output of head `j`.
#[inline(never)]
pub fn attend_position(
    q: &[f32],
    key: &[f32],
    value: &[f32],
    scale: f32,
    max: &mut [f32],
    sum: &mut [f32],
    out: &mut [f32],
) {
    let hd = key.len();
    for (j, (oh, qh)) in out.chunks_exact_mut(hd).zip(q.chunks_exact(hd)).enumerate() {
        let s = dot(qh, key) * scale;
        if s > max[j] {
            let c = exp(max[j] - s);
            sum[j] *= c;
            oh.iter_mut().for_each(|v| *v *= c);
            max[j] = s;
        }
        let wgt = exp(s - max[j]);
        sum[j] += wgt;
        for (acc, &v) in oh.iter_mut().zip(value.iter()) {
            *acc += wgt * v;
        }
    }
}

/// Dot product of two `f32` slices of equal length, in eight interleaved partial sums.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0, 0.5];
        let w = [1.0f32, 2.0, 0.5, 1.0];
        let mut out = [0.0f32; 4];
        rms_norm(&x, &w, 1e-5, &mut out);
        let ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0;
        let s = 1.0 / (ms + 1e-5f32).sqrt();
        for i in 0..4 {
            assert!((out[i] - x[i] * s * w[i]).abs() < 1e-6);
        }
    }

    /// Distance in units in the last place between `a` and the exact value `b` (as f64).
    fn ulps(a: f32, b: f64) -> f64 {
        let ulp = (b as f32).abs().next_up() - (b as f32).abs();
        (a as f64 - b).abs() / ulp as f64
    }

    #[test]
    fn exp_is_within_two_ulp_on_its_range() {
        // Every 97th float in [-87, 88] (about 5.6 million values), and the ends.
        let (lo, hi) = ((-87.0f32).to_bits(), 88.0f32.to_bits());
        let mut worst = (0.0, 0.0f32);
        let negatives = (0x8000_0000..=lo).step_by(97).chain([lo]);
        for bits in negatives.chain((0..=hi).step_by(97)).chain([hi]) {
            let x = f32::from_bits(bits);
            let e = ulps(exp(x), (x as f64).exp());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        eprintln!("worst: exp({}) is {} ulp off", worst.1, worst.0);
        assert!(worst.0 <= 1.0, "exp({}) is {} ulp off", worst.1, worst.0);
    }

    #[test]
    fn exp_mostly_equals_libm() {
        // 2 million points of [-20, 20], where SiLU and softmax arguments lie.
        let (mut same, mut all) = (0u64, 0u64);
        for i in 0..2_000_000u32 {
            let x = -20.0 + 40.0 * (i as f32 / 2_000_000.0);
            all += 1;
            same += (exp(x) == x.exp()) as u64;
        }
        eprintln!("exp = libm expf for {same} of {all}");
        // 95 % measured with glibc 2.36 (the compensated additions of `one_plus` are what brings it there).
        assert!(same * 100 >= all * 90, "exp equals libm's expf for only {same} of {all} inputs");
    }

    #[test]
    fn exp_saturates_outside_its_range_and_maps_nan_to_the_low_end() {
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert_eq!(exp(f32::NEG_INFINITY), exp(-87.0));
        assert_eq!(exp(f32::NAN), exp(-87.0));
        assert_eq!(exp(1000.0), exp(88.0));
        assert!(exp(88.0).is_finite() && exp(-87.0).is_normal());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn swiglu_is_the_same_in_every_lane() {
        // The loop is vectorised: each lane must give the scalar function's bits, at any offset and length.
        let mut gate: Vec<f32> = (0..67).map(|i| (i as f32 - 33.0) * 0.37).collect();
        gate[..8].copy_from_slice(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1000.0, -1000.0, 0.0, -0.0, 1e-30]);
        let up: Vec<f32> = (0..67).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut g = gate.clone();
        swiglu(&mut g, &up);
        for i in 0..gate.len() {
            let v = std::hint::black_box(gate[i]);
            let want = v / (1.0 + exp(-v)) * up[i];
            assert!(g[i].to_bits() == want.to_bits() || (g[i].is_nan() && want.is_nan()), "lane {i}: {} {want}", g[i]);
        }
    }

    #[test]
    fn rows_to_tokens_is_the_transpose_for_every_shape() {
        for rows in [0usize, 1, 3, 4, 5, 8, 13] {
            for n_tokens in [1usize, 3, 4, 9, 16, 17] {
                let by_row: Vec<f32> = (0..rows * n_tokens).map(|i| i as f32 + 0.5).collect();
                for t0 in 0..n_tokens {
                    for nt in 0..=(n_tokens - t0) {
                        let mut out = vec![f32::NAN; nt * rows];
                        rows_to_tokens(&by_row, rows, n_tokens, t0, &mut out);
                        for i in 0..nt {
                            for r in 0..rows {
                                assert_eq!(
                                    out[i * rows + r],
                                    by_row[r * n_tokens + t0 + i],
                                    "{rows}x{n_tokens} t0 {t0}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "tokens")]
    fn rows_to_tokens_rejects_tokens_past_the_end() {
        rows_to_tokens(&[0.0; 8], 2, 4, 3, &mut [0.0; 4]);
    }

    #[test]
    fn argmax_prefers_lowest_index() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn swiglu_of_zero_gate_is_zero() {
        let mut g = [0.0f32, 1.0];
        swiglu(&mut g, &[5.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn dot_matches_sum_of_products_with_a_remainder() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.25).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-4, "{} vs {want}", dot(&a, &b));
    }

    #[test]
    fn rope_rotate_turns_pairs_and_leaves_the_tail() {
        let mut h = [1.0f32, 0.0, 0.0, 2.0, 7.0];
        let half_pi = std::f32::consts::FRAC_PI_2;
        rope_rotate(&mut h, &[half_pi.cos(), 1.0], &[half_pi.sin(), 0.0]);
        assert!(h[0].abs() < 1e-6 && (h[1] - 1.0).abs() < 1e-6, "{h:?}");
        assert_eq!(&h[2..], &[0.0, 2.0, 7.0]);
    }

    /// Two query heads over three positions: the online softmax equals the two-pass one.
    #[test]
    fn attend_position_equals_softmax_weighted_values() {
        let hd = 3;
        let q = [0.3f32, -1.0, 2.0, 1.5, 0.5, -0.5];
        let keys = [[1.0f32, 0.0, 0.5], [-2.0, 1.0, 3.0], [0.5, 0.5, -1.0]];
        let values = [[1.0f32, 2.0, 3.0], [-1.0, 0.0, 4.0], [0.5, -3.0, 1.0]];
        let scale = 0.7;
        let (mut max, mut sum, mut out) = ([f32::NEG_INFINITY; 2], [0.0f32; 2], [0.0f32; 6]);
        for (k, v) in keys.iter().zip(&values) {
            attend_position(&q, k, v, scale, &mut max, &mut sum, &mut out);
        }
        for j in 0..2 {
            let qh = &q[j * hd..(j + 1) * hd];
            let scores: Vec<f32> =
                keys.iter().map(|k| qh.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale).collect();
            let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
            let total: f32 = w.iter().sum();
            for c in 0..hd {
                let want: f32 = w.iter().zip(&values).map(|(w, v)| w * v[c]).sum::<f32>() / total;
                let got = out[j * hd + c] / sum[j];
                assert!((got - want).abs() < 1e-5, "head {j} value {c}: {got} vs {want}");
            }
        }
    }
}
