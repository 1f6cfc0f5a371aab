//! F32, F16 and BF16 rows: plain conversions, and dot products accumulated in f32 (for F16/BF16 both operands are
//! in the 16-bit format, as ggml does).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

pub(super) fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

pub(super) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (s, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

const CHUNK: usize = 64;

pub(super) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    let mut bits = [f16::ZERO; CHUNK];
    for (d, s) in dst.chunks_mut(CHUNK).zip(src.chunks(CHUNK * 2)) {
        let b = &mut bits[..d.len()];
        for (x, p) in b.iter_mut().zip(s.chunks_exact(2)) {
            *x = f16::from_bits(u16::from_le_bytes([p[0], p[1]]));
        }
        b.convert_to_f32_slice(d);
    }
}

pub(super) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    let mut bits = [f16::ZERO; CHUNK];
    for (s, d) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK * 2)) {
        let b = &mut bits[..s.len()];
        b.convert_from_f32_slice(s);
        for (x, p) in b.iter().zip(d.chunks_exact_mut(2)) {
            p.copy_from_slice(&x.to_bits().to_le_bytes());
        }
    }
}

pub(super) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = bf16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
    }
}

pub(super) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (s, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&bf16::from_f32(*s).to_bits().to_le_bytes());
    }
}

/// Sum of products with 8 independent accumulators (lets LLVM vectorise the loop).
fn dot_lanes(n: usize, mut a: impl FnMut(usize) -> f32, mut b: impl FnMut(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let full = n / 8 * 8;
    let mut i = 0;
    while i < full {
        for (j, s) in acc.iter_mut().enumerate() {
            *s += a(i + j) * b(i + j);
        }
        i += 8;
    }
    let mut sum: f32 = acc.iter().sum();
    for k in full..n {
        sum += a(k) * b(k);
    }
    sum
}

pub(super) fn dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (&w[..n * 4], &x[..n * 4]);
    let rd = |b: &[u8], i: usize| f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    dot_lanes(n, |i| rd(w, i), |i| rd(x, i))
}

pub(super) fn dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (mut a, mut b) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
    let mut sum = 0.0f32;
    let mut i = 0;
    while i < n {
        let m = (n - i).min(CHUNK);
        dequantize_f16(&w[2 * i..2 * (i + m)], &mut a[..m]);
        dequantize_f16(&x[2 * i..2 * (i + m)], &mut b[..m]);
        sum += dot_lanes(m, |k| a[k], |k| b[k]);
        i += m;
    }
    sum
}

pub(super) fn dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // Sliced to `n` values first (as `dot_f32`), so the reads below need no bounds check of their own: with one per
    // read, the vectorised loop and its checks took 12 KB of aarch64 code.
    let (w, x) = (&w[..n * 2], &x[..n * 2]);
    let rd = |b: &[u8], i: usize| bf16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32();
    dot_lanes(n, |i| rd(w, i), |i| rd(x, i))
}
