//! Rotary position embedding in Llama's layout (adjacent pairs `(2i, 2i+1)` rotated, ggml's "normal" mode), with
//! the cos/sin tables computed once for every position of the context.

use crate::alloc::{bytes_of, OutOfMemory};

/// Precomputed `cos`/`sin` of every (position, pair) angle.
#[derive(Clone, Debug)]
pub struct RopeTable {
    n_pairs: usize,
    n_positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Tables for positions `0..n_positions` and `rope_dim / 2` pairs. Angles follow ggml: `theta_i = pos *
    /// base^(-2i/rope_dim)`, computed by repeated f32 multiplication like ggml's rope cache.
    /// The tables are sized by the caller's context: a size that cannot be allocated is [`OutOfMemory`].
    pub fn new(rope_dim: usize, freq_base: f32, n_positions: usize) -> Result<RopeTable, OutOfMemory> {
        let n_pairs = rope_dim / 2;
        let theta_scale = freq_base.powf(-2.0 / rope_dim as f32);
        let n = n_pairs.saturating_mul(n_positions);
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for v in [&mut cos, &mut sin] {
            v.try_reserve_exact(n)
                .map_err(|_| OutOfMemory { what: "RoPE tables", bytes: bytes_of::<f32>(n).saturating_mul(2) })?;
        }
        for pos in 0..n_positions {
            let mut theta = pos as f32;
            for _ in 0..n_pairs {
                cos.push(theta.cos());
                sin.push(theta.sin());
                theta *= theta_scale;
            }
        }
        Ok(RopeTable { n_pairs, n_positions, cos, sin })
    }

    /// Number of positions covered.
    pub fn n_positions(&self) -> usize {
        self.n_positions
    }

    /// Bytes held by the tables.
    pub fn n_bytes(&self) -> usize {
        (self.cos.len() + self.sin.len()) * 4
    }

    /// Rotates every head of `x` (heads of `head_dim` values, back to back) for position `pos`. Dimensions past
    /// `rope_dim` in each head are left unchanged. `pos` must be `< n_positions()`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let base = pos * self.n_pairs;
        let (cos, sin) = (&self.cos[base..base + self.n_pairs], &self.sin[base..base + self.n_pairs]);
        for head in x.chunks_exact_mut(head_dim) {
            crate::compute::ops::rope_rotate(head, cos, sin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_rotation_preserves_norm() {
        let t = RopeTable::new(8, 10000.0, 16).unwrap();
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 * 0.37 - 2.0).collect();
        let orig = x.clone();
        t.apply(&mut x, 8, 0);
        assert_eq!(x, orig);
        t.apply(&mut x, 8, 11);
        for (a, b) in x.chunks(2).zip(orig.chunks(2)) {
            let na = a[0] * a[0] + a[1] * a[1];
            let nb = b[0] * b[0] + b[1] * b[1];
            assert!((na - nb).abs() < 1e-4 * nb.max(1.0));
        }
        // first pair of each head rotates by exactly `pos` radians
        let mut y = vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        t.apply(&mut y, 8, 3);
        assert!((y[0] - 3.0f32.cos()).abs() < 1e-6 && (y[1] - 3.0f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn partial_rotation_leaves_tail_untouched() {
        let t = RopeTable::new(4, 10000.0, 4).unwrap();
        let mut x = vec![1.0f32; 8];
        t.apply(&mut x, 8, 2);
        assert_eq!(&x[4..], &[1.0; 4]);
    }
}
