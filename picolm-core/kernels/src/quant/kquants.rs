//! The 256-value "K" formats: unpacking, dequantization and dot products with Q8_K activations.
//!
//! Every weight block is unpacked to integer values `q[256]`, integer scales and mins per 16 values, and the two
//! float super-scales, so that `value[i] = d * scale[i / 16] * q[i] - dmin * min[i / 16]`. The dot product is then
//! the same integer arithmetic ggml performs: `d * dy * Σ_g scale[g] Σ q·y  -  dmin * dy * Σ_g min[g] * bsum[g]`.
//!
//! Layouts (ggml `block_q*_K`): Q2_K `{u8 scales[16]; u8 qs[64]; f16 d, dmin}`; Q3_K `{u8 hmask[32]; u8 qs[64];
//! u8 scales[12]; f16 d}`; Q4_K `{f16 d, dmin; u8 scales[12]; u8 qs[128]}`; Q5_K `{f16 d, dmin; u8 scales[12];
//! u8 qh[32]; u8 qs[128]}`; Q6_K `{u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}`; Q8_K `{f32 d; i8 qs[256];
//! i16 bsums[16]}`.

use super::{f16_at, nearest_int};
use crate::ggml_type::GgmlType;

/// Values per super-block.
pub(super) const QK_K: usize = 256;
/// Groups of 16 values per super-block.
pub(super) const GROUPS: usize = QK_K / 16;

const _: () = assert!(GgmlType::Q2_K.block_bytes() == 16 + 64 + 4);
const _: () = assert!(GgmlType::Q3_K.block_bytes() == 32 + 64 + 12 + 2);
const _: () = assert!(GgmlType::Q4_K.block_bytes() == 4 + 12 + 128);
const _: () = assert!(GgmlType::Q5_K.block_bytes() == 4 + 12 + 32 + 128);
const _: () = assert!(GgmlType::Q6_K.block_bytes() == 128 + 64 + 16 + 2);
const _: () = assert!(GgmlType::Q8_K.block_bytes() == 4 + 256 + 32);

/// A K-quant block in integer form.
pub(super) struct KBlock {
    pub q: [i8; QK_K],
    pub scale: [i32; GROUPS],
    pub min: [i32; GROUPS],
    pub d: f32,
    pub dmin: f32,
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) of Q4_K/Q5_K.
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// The 16 signed 6-bit scales of a Q3_K block (stored with an offset of 32).
pub(super) fn q3_scales(s: &[u8]) -> [i32; GROUPS] {
    let mut out = [0i32; GROUPS];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

pub(super) fn unpack(ty: GgmlType, b: &[u8]) -> KBlock {
    let mut k = KBlock { q: [0; QK_K], scale: [0; GROUPS], min: [0; GROUPS], d: 0.0, dmin: 0.0 };
    match ty {
        GgmlType::Q2_K => {
            let (scales, qs) = (&b[0..16], &b[16..80]);
            k.d = f16_at(b, 80);
            k.dmin = f16_at(b, 82);
            for g in 0..GROUPS {
                k.scale[g] = (scales[g] & 0xF) as i32;
                k.min[g] = (scales[g] >> 4) as i32;
            }
            // 128 values per half; within a half, shift s (0,2,4,6) selects 32 values: 16 from qs[l], 16 from qs[l+16].
            for half in 0..2 {
                for s in 0..4 {
                    for l in 0..32 {
                        k.q[half * 128 + s * 32 + l] = ((qs[half * 32 + l] >> (2 * s)) & 3) as i8;
                    }
                }
            }
        }
        GgmlType::Q3_K => {
            let (hmask, qs) = (&b[0..32], &b[32..96]);
            k.scale = q3_scales(&b[96..108]);
            k.d = f16_at(b, 108);
            for half in 0..2 {
                for s in 0..4 {
                    let bit = 1u8 << (half * 4 + s);
                    for l in 0..32 {
                        let low = ((qs[half * 32 + l] >> (2 * s)) & 3) as i8;
                        let sub = if hmask[l] & bit != 0 { 0 } else { 4 };
                        k.q[half * 128 + s * 32 + l] = low - sub;
                    }
                }
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            k.d = f16_at(b, 0);
            k.dmin = f16_at(b, 2);
            let scales = &b[4..16];
            for j in 0..8 {
                let (sc, m) = scale_min_k4(j, scales);
                for g in [2 * j, 2 * j + 1] {
                    k.scale[g] = sc as i32;
                    k.min[g] = m as i32;
                }
            }
            let (qh, qs) = if ty == GgmlType::Q5_K { (Some(&b[16..48]), &b[48..176]) } else { (None, &b[16..144]) };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[c * 32 + l];
                    let (mut lo, mut hi) = ((byte & 0xF) as i8, (byte >> 4) as i8);
                    if let Some(qh) = qh {
                        lo += (((qh[l] >> (2 * c)) & 1) << 4) as i8;
                        hi += (((qh[l] >> (2 * c + 1)) & 1) << 4) as i8;
                    }
                    k.q[c * 64 + l] = lo;
                    k.q[c * 64 + 32 + l] = hi;
                }
            }
        }
        GgmlType::Q6_K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            k.d = f16_at(b, 208);
            for g in 0..GROUPS {
                k.scale[g] = sc[g] as i8 as i32;
            }
            for half in 0..2 {
                let (ql, qh) = (&ql[half * 64..], &qh[half * 32..]);
                for l in 0..32 {
                    let base = half * 128 + l;
                    k.q[base] = (((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8) - 32;
                    k.q[base + 32] = (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8) - 32;
                    k.q[base + 64] = (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8) - 32;
                    k.q[base + 96] = (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8) - 32;
                }
            }
        }
        _ => unreachable!("kquants::unpack called with {ty}"),
    }
    k
}

pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(ty.block_bytes()).zip(dst.chunks_exact_mut(QK_K)) {
        let k = unpack(ty, b);
        for (i, o) in y.iter_mut().enumerate() {
            let g = i / 16;
            *o = k.d * k.scale[g] as f32 * k.q[i] as f32 - k.dmin * k.min[g] as f32;
        }
    }
}

fn dot_k(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let wb = ty.block_bytes();
    let mut sum = 0.0f32;
    for i in 0..n / QK_K {
        let k = unpack(ty, &w[i * wb..(i + 1) * wb]);
        let xb = &x[i * 292..(i + 1) * 292];
        let dy = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
        let y = &xb[4..260];
        let (mut isum, mut msum) = (0i32, 0i32);
        for g in 0..GROUPS {
            let mut s = 0i32;
            for l in g * 16..(g + 1) * 16 {
                s += k.q[l] as i32 * y[l] as i8 as i32;
            }
            isum += k.scale[g] * s;
            if k.min[g] != 0 {
                let bsum = i16::from_le_bytes([xb[260 + 2 * g], xb[261 + 2 * g]]) as i32;
                msum += k.min[g] * bsum;
            }
        }
        sum += k.d * dy * isum as f32 - k.dmin * dy * msum as f32;
    }
    sum
}

pub(super) fn dot_q2_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_k(GgmlType::Q2_K, n, w, x)
}

pub(super) fn dot_q3_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_k(GgmlType::Q3_K, n, w, x)
}

pub(super) fn dot_q4_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_k(GgmlType::Q4_K, n, w, x)
}

pub(super) fn dot_q5_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_k(GgmlType::Q5_K, n, w, x)
}

pub(super) fn dot_q6_k(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_k(GgmlType::Q6_K, n, w, x)
}

/// ggml's `quantize_row_q8_K_ref`: scale from the signed value of largest magnitude, 16-value partial sums.
pub(super) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(292)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -128.0 / max;
        let mut q = [0i8; QK_K];
        for (o, &v) in q.iter_mut().zip(x) {
            *o = nearest_int(iscale * v).min(127) as i8;
        }
        b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        for (o, &v) in b[4..260].iter_mut().zip(&q) {
            *o = v as u8;
        }
        for g in 0..GROUPS {
            let s: i32 = q[g * 16..(g + 1) * 16].iter().map(|&v| v as i32).sum();
            b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
        }
    }
}

pub(super) fn dequantize_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(292).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (o, &q) in y.iter_mut().zip(&b[4..260]) {
            *o = d * q as i8 as f32;
        }
    }
}
