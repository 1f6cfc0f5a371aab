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

/// SiLU-gated product used by SwiGLU: `gate[i] = silu(gate[i]) * up[i]`.
#[inline(never)]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let v = *g;
        *g = v / (1.0 + (-v).exp()) * u;
    }
}

/// `acc[i] += x[i]`.
#[inline(never)]
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
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
            let c = (max[j] - s).exp();
            sum[j] *= c;
            oh.iter_mut().for_each(|v| *v *= c);
            max[j] = s;
        }
        let wgt = (s - max[j]).exp();
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
