//! The 32-value formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1 (byte layouts of ggml's `block_q*`).
//!
//! Layouts: Q4_0 `{f16 d; u8 qs[16]}` value j in the low nibble of qs[j], value j+16 in the high nibble;
//! Q4_1 `{f16 d, m; u8 qs[16]}`; Q5_0 `{f16 d; u8 qh[4]; u8 qs[16]}` with bit j of qh the fifth bit of value j;
//! Q5_1 `{f16 d, m; u8 qh[4]; u8 qs[16]}`; Q8_0 `{f16 d; i8 qs[32]}`; Q8_1 `{f16 d, s; i8 qs[32]}` with
//! s = d * sum(qs).

use super::{f16_at, put_f16};
use crate::ggml_type::GgmlType;

const QK: usize = 32;

// Size checks of the block layouts (the byte sizes the code below indexes by).
const _: () = assert!(GgmlType::Q4_0.block_bytes() == 2 + QK / 2);
const _: () = assert!(GgmlType::Q4_1.block_bytes() == 4 + QK / 2);
const _: () = assert!(GgmlType::Q5_0.block_bytes() == 2 + 4 + QK / 2);
const _: () = assert!(GgmlType::Q5_1.block_bytes() == 4 + 4 + QK / 2);
const _: () = assert!(GgmlType::Q8_0.block_bytes() == 2 + QK);
const _: () = assert!(GgmlType::Q8_1.block_bytes() == 4 + QK);

/// One block unpacked: integer values `q`, scale `d`, and the additive minimum `m` (0 for symmetric formats).
struct Unpacked {
    q: [i8; QK],
    d: f32,
    m: f32,
}

fn nibbles(qs: &[u8], q: &mut [i8; QK], offset: i8) {
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0F) as i8 - offset;
        q[j + QK / 2] = (qs[j] >> 4) as i8 - offset;
    }
}

fn fifth_bits(qh: &[u8], q: &mut [i8; QK], offset: i8) {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    for (j, v) in q.iter_mut().enumerate() {
        *v = *v + (((h >> j) & 1) << 4) as i8 - offset;
    }
}

fn unpack(ty: GgmlType, b: &[u8]) -> Unpacked {
    let mut q = [0i8; QK];
    match ty {
        GgmlType::Q4_0 => {
            nibbles(&b[2..18], &mut q, 8);
            Unpacked { q, d: f16_at(b, 0), m: 0.0 }
        }
        GgmlType::Q4_1 => {
            nibbles(&b[4..20], &mut q, 0);
            Unpacked { q, d: f16_at(b, 0), m: f16_at(b, 2) }
        }
        GgmlType::Q5_0 => {
            nibbles(&b[6..22], &mut q, 0);
            fifth_bits(&b[2..6], &mut q, 16);
            Unpacked { q, d: f16_at(b, 0), m: 0.0 }
        }
        GgmlType::Q5_1 => {
            nibbles(&b[8..24], &mut q, 0);
            fifth_bits(&b[4..8], &mut q, 0);
            Unpacked { q, d: f16_at(b, 0), m: f16_at(b, 2) }
        }
        GgmlType::Q8_0 => {
            for (v, &s) in q.iter_mut().zip(&b[2..34]) {
                *v = s as i8;
            }
            Unpacked { q, d: f16_at(b, 0), m: 0.0 }
        }
        GgmlType::Q8_1 => {
            for (v, &s) in q.iter_mut().zip(&b[4..36]) {
                *v = s as i8;
            }
            Unpacked { q, d: f16_at(b, 0), m: 0.0 }
        }
        _ => unreachable!("legacy::unpack called with {ty}"),
    }
}

pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(ty.block_bytes()).zip(dst.chunks_exact_mut(QK)) {
        let u = unpack(ty, b);
        for (o, &q) in y.iter_mut().zip(&u.q) {
            *o = q as f32 * u.d + u.m;
        }
    }
}

fn abs_max_signed(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn pack_nibbles(q: &[u8; QK], qs: &mut [u8]) {
    for j in 0..QK / 2 {
        qs[j] = (q[j] & 0x0F) | ((q[j + QK / 2] & 0x0F) << 4);
    }
}

fn pack_fifth_bits(q: &[u8; QK], qh: &mut [u8]) {
    let mut h = 0u32;
    for (j, &v) in q.iter().enumerate() {
        h |= (((v >> 4) & 1) as u32) << j;
    }
    qh.copy_from_slice(&h.to_le_bytes());
}

/// ggml's reference quantizers (`quantize_row_q*_ref`).
pub(super) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(ty.block_bytes())) {
        let mut q = [0u8; QK];
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 => {
                let (levels, half) = if ty == GgmlType::Q4_0 { (15u8, 8.0f32) } else { (31u8, 16.0f32) };
                let (_, max) = abs_max_signed(x);
                let d = max / -half;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                for (o, &v) in q.iter_mut().zip(x) {
                    *o = ((v * id + half + 0.5) as i8).clamp(0, levels as i8) as u8;
                }
                put_f16(b, 0, d);
                if ty == GgmlType::Q4_0 {
                    pack_nibbles(&q, &mut b[2..18]);
                } else {
                    pack_fifth_bits(&q, &mut b[2..6]);
                    pack_nibbles(&q, &mut b[6..22]);
                }
            }
            GgmlType::Q4_1 | GgmlType::Q5_1 => {
                let levels = if ty == GgmlType::Q4_1 { 15u8 } else { 31u8 };
                let (min, max) = min_max(x);
                let d = (max - min) / levels as f32;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                for (o, &v) in q.iter_mut().zip(x) {
                    *o = (((v - min) * id + 0.5) as u8).min(levels);
                }
                put_f16(b, 0, d);
                put_f16(b, 2, min);
                if ty == GgmlType::Q4_1 {
                    pack_nibbles(&q, &mut b[4..20]);
                } else {
                    pack_fifth_bits(&q, &mut b[4..8]);
                    pack_nibbles(&q, &mut b[8..24]);
                }
            }
            GgmlType::Q8_0 | GgmlType::Q8_1 => {
                let (amax, _) = abs_max_signed(x);
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let qs_at = if ty == GgmlType::Q8_0 { 2 } else { 4 };
                let mut sum = 0i32;
                for (o, &v) in b[qs_at..qs_at + QK].iter_mut().zip(x) {
                    let qi = (v * id).round().clamp(-127.0, 127.0) as i8;
                    sum += qi as i32;
                    *o = qi as u8;
                }
                put_f16(b, 0, d);
                if ty == GgmlType::Q8_1 {
                    put_f16(b, 2, sum as f32 * d);
                }
            }
            _ => unreachable!("legacy::quantize called with {ty}"),
        }
    }
}

fn isum(a: &[i8; QK], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i8 as i32).sum()
}

fn dot_generic(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wb, xb) = (ty.block_bytes(), if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) { 36 } else { 34 });
    let mut sum = 0.0f32;
    for i in 0..n / QK {
        let u = unpack(ty, &w[i * wb..(i + 1) * wb]);
        let xb = &x[i * xb..(i + 1) * xb];
        let dx = f16_at(xb, 0);
        if xb.len() == 36 {
            // Q8_1 activations: d * sum(q) is stored, so the minimum contributes m * s.
            sum += u.d * dx * isum(&u.q, &xb[4..36]) as f32 + u.m * f16_at(xb, 2);
        } else {
            sum += u.d * dx * isum(&u.q, &xb[2..34]) as f32;
        }
    }
    sum
}

pub(super) fn dot_q4_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_generic(GgmlType::Q4_0, n, w, x)
}

pub(super) fn dot_q4_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_generic(GgmlType::Q4_1, n, w, x)
}

pub(super) fn dot_q5_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_generic(GgmlType::Q5_0, n, w, x)
}

pub(super) fn dot_q5_1(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_generic(GgmlType::Q5_1, n, w, x)
}

pub(super) fn dot_q8_0(n: usize, w: &[u8], x: &[u8]) -> f32 {
    dot_generic(GgmlType::Q8_0, n, w, x)
}
