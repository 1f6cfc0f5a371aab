//! The key/value cache: for every layer and position, the rotated key and the value of each KV head, allocated for
//! exactly the context asked for. Stored as 16-bit floats (default) or Q8_0 blocks (about half the bytes again).
//!
//! Rows are written with the SIMD activation quantizer ([`crate::simd::quantize_activations`], F16C / `fcvtn` /
//! AVX2 Q8_0) and read back with the SIMD row conversion ([`crate::simd::dequantize_row`]); both give exactly the
//! bytes and values of the scalar references in [`crate::quant`] (tested below), so a cache written on one path
//! reads the same on any other, and saved state files do not depend on the CPU.

use crate::alloc::{try_zeroed, OutOfMemory};
use crate::ggml_type::GgmlType;
use crate::model::ModelError;

/// Storage format of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvType {
    /// IEEE half precision (2 bytes per value); what llama.cpp uses by default.
    #[default]
    F16,
    /// Q8_0 blocks (34 bytes per 32 values). Needs a head size that is a multiple of 32.
    Q8_0,
}

impl KvType {
    /// The block format of the cache rows.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            KvType::F16 => GgmlType::F16,
            KvType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// Parses `"f16"` / `"q8_0"` (case-insensitive).
    pub fn from_name(name: &str) -> Option<KvType> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "q8_0" | "q8" => Some(KvType::Q8_0),
            _ => None,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }
}

/// Which half of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvPart {
    /// Keys.
    Key,
    /// Values.
    Value,
}

/// Keys and values of past positions.
#[derive(Clone, Debug)]
pub struct KvCache {
    ty: KvType,
    n_layer: usize,
    n_ctx: usize,
    kv_dim: usize,
    head_dim: usize,
    row_bytes: usize,
    k: Vec<u8>,
    v: Vec<u8>,
}

impl KvCache {
    /// A zeroed cache for `n_layer` layers, `n_ctx` positions and rows of `kv_dim` values (heads of `head_dim`).
    /// [`ModelError::InvalidParameter`] when `ty` cannot store heads of this size (Q8_0 needs multiples of 32);
    /// [`ModelError::OutOfMemory`] with the size when the cache cannot be allocated (fallibly, never an abort).
    pub fn new(
        ty: KvType,
        n_layer: usize,
        n_ctx: usize,
        kv_dim: usize,
        head_dim: usize,
    ) -> Result<KvCache, ModelError> {
        let g = ty.ggml_type();
        let row_bytes =
            g.row_bytes(kv_dim as u64).filter(|_| head_dim.is_multiple_of(g.block_size())).ok_or_else(|| {
                ModelError::InvalidParameter {
                    name: "kv_type".into(),
                    value: format!("{} cannot store heads of {head_dim} values", ty.name()),
                }
            })? as usize;
        let n = n_layer.checked_mul(n_ctx).and_then(|n| n.checked_mul(row_bytes));
        let oom = || OutOfMemory {
            what: "KV cache",
            bytes: (n_layer as u64).saturating_mul(n_ctx as u64).saturating_mul(row_bytes as u64 * 2),
        };
        let n = n.ok_or_else(oom)?;
        let k = try_zeroed::<u8>(n, "KV cache").map_err(|_| oom())?;
        let v = try_zeroed::<u8>(n, "KV cache").map_err(|_| oom())?;
        Ok(KvCache { ty, n_layer, n_ctx, kv_dim, head_dim, row_bytes, k, v })
    }

    /// Storage format.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }

    /// Positions the cache can hold.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes allocated for keys and values.
    pub fn n_bytes(&self) -> usize {
        self.k.len() + self.v.len()
    }

    /// Bytes of one stored row (one position of one layer, keys or values).
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    fn offset(&self, layer: usize, pos: usize) -> usize {
        debug_assert!(layer < self.n_layer && pos < self.n_ctx);
        (layer * self.n_ctx + pos) * self.row_bytes
    }

    /// Stores the key and value rows (`kv_dim` values each) of `pos` in `layer`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (o, rb, t) = (self.offset(layer, pos), self.row_bytes, self.ty.ggml_type());
        crate::simd::quantize_activations(t, k, &mut self.k[o..o + rb]);
        crate::simd::quantize_activations(t, v, &mut self.v[o..o + rb]);
    }

    /// Bytes of one head within a row, and the offset of head `g` in the row.
    fn head_span(&self, g: usize) -> (usize, usize) {
        let t = self.ty.ggml_type();
        let per_value = |n: usize| n / t.block_size() * t.block_bytes();
        (per_value(g * self.head_dim), per_value(self.head_dim))
    }

    /// Converts the stored KV head `g` at `pos` of `layer` to `f32` into `out` (`head_dim` values).
    pub fn head(&self, part: KvPart, layer: usize, pos: usize, g: usize, out: &mut [f32]) {
        let (start, len) = self.head_span(g);
        let o = self.offset(layer, pos) + start;
        let store = match part {
            KvPart::Key => &self.k,
            KvPart::Value => &self.v,
        };
        crate::simd::dequantize_row(self.ty.ggml_type(), &store[o..o + len], out);
    }

    /// Raw bytes of positions `0..n_pos` of `layer` (for saving state).
    pub fn layer_bytes(&self, part: KvPart, layer: usize, n_pos: usize) -> &[u8] {
        let o = self.offset(layer, 0);
        let store = match part {
            KvPart::Key => &self.k,
            KvPart::Value => &self.v,
        };
        &store[o..o + n_pos * self.row_bytes]
    }

    /// Mutable raw bytes of positions `0..n_pos` of `layer` (for loading state).
    pub fn layer_bytes_mut(&mut self, part: KvPart, layer: usize, n_pos: usize) -> &mut [u8] {
        let o = self.offset(layer, 0);
        let rb = self.row_bytes;
        let store = match part {
            KvPart::Key => &mut self.k,
            KvPart::Value => &mut self.v,
        };
        &mut store[o..o + n_pos * rb]
    }

    /// Width of a stored row in values.
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    /// Deterministic rows in [-scale, scale) with a few values 40 times larger, exact Q8_0 rounding ties (a block
    /// whose largest magnitude is 127 makes every `k + 0.5` a tie), zeros, and values beyond f16's range.
    fn rows(n_rows: usize, n: usize) -> Vec<Vec<f32>> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        (0..n_rows)
            .map(|r| match r % 5 {
                0 => (0..n).map(|i| if i % 32 == 0 { 127.0 } else { (i % 41) as f32 - 20.5 }).collect(),
                1 => vec![0.0; n],
                2 => (0..n).map(|i| if i % 9 == 0 { 7.0e4 * next() } else { 1e-6 * next() }).collect(),
                _ => {
                    let scale = [1e-3f32, 1.0, 300.0][r % 3];
                    (0..n).map(|i| if i % 37 == 5 { 40.0 * scale * next() } else { scale * next() }).collect()
                }
            })
            .collect()
    }

    /// The cache stores exactly the bytes of the scalar reference quantizer and reads back exactly its values, for
    /// both storage types (the write path uses the SIMD quantizer, the read path the SIMD conversion).
    #[test]
    fn stored_rows_are_the_reference_bytes_and_read_back_as_the_reference_values() {
        let (n_layer, n_ctx, head_dim, n_head) = (2, 11, 64, 3);
        let kv_dim = head_dim * n_head;
        for ty in [KvType::F16, KvType::Q8_0] {
            let g = ty.ggml_type();
            let mut cache = KvCache::new(ty, n_layer, n_ctx, kv_dim, head_dim).unwrap();
            let data = rows(2 * n_layer * n_ctx, kv_dim);
            for layer in 0..n_layer {
                for pos in 0..n_ctx {
                    let i = 2 * (layer * n_ctx + pos);
                    cache.store(layer, pos, &data[i], &data[i + 1]);
                }
            }
            let rb = cache.row_bytes();
            for layer in 0..n_layer {
                for (p, part) in [KvPart::Key, KvPart::Value].into_iter().enumerate() {
                    let stored = cache.layer_bytes(part, layer, n_ctx);
                    for pos in 0..n_ctx {
                        let src = &data[2 * (layer * n_ctx + pos) + p];
                        let mut want = vec![0u8; rb];
                        quant::quantize_row_unchecked(g, src, &mut want);
                        assert_eq!(&stored[pos * rb..(pos + 1) * rb], &want[..], "{ty:?} layer {layer} pos {pos}");
                        for h in 0..n_head {
                            let (mut got, mut reference) = (vec![f32::NAN; head_dim], vec![0f32; head_dim]);
                            cache.head(part, layer, pos, h, &mut got);
                            let head_bytes = rb / n_head;
                            quant::dequantize_row_unchecked(
                                g,
                                &want[h * head_bytes..(h + 1) * head_bytes],
                                &mut reference,
                            );
                            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&got), bits(&reference), "{ty:?} layer {layer} pos {pos} head {h}");
                        }
                    }
                }
            }
        }
    }
}
