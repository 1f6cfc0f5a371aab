//! ggml's reference quantizers for the K formats (`quantize_row_q{2..6}_K_ref`): per sub-block scale (and min)
//! searches (`make_qx_quants`, `make_qkx2_quants`), then the scales themselves quantized against a super-scale.

use super::kquants::{scale_min_k4, QK_K};
use super::{nearest_int, put_f16};
use crate::ggml_type::GgmlType;

const GROUP_MAX_EPS: f32 = 1e-15;

/// Symmetric search: `x ≈ scale * (L - nmax)` with `L` in `0..2*nmax`, weights `x²` (ggml `make_qx_quants`,
/// rmse_type 1). Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [u8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    let mut best_iscale = iscale;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            scale = sumlx / suml2;
            best = scale * sumlx;
            best_iscale = iscale;
        }
    }
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (nmax + quant(best_iscale, v)) as u8;
    }
    scale
}

/// Asymmetric search: `x ≈ scale * L - min` with `L` in `0..=nmax` (ggml `make_qkx2_quants`). Returns
/// `(scale, min)` with `min >= 0`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (0.0f32, 0.0f32);
    for i in 0..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        best_mad += weights[i] * err(scale * l as f32 + min - x[i]);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mad: f32 = (0..n).map(|i| weights[i] * err(this_scale * laux[i] as f32 + this_min - x[i])).sum();
            if mad < best_mad {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit values: within each half of 128, value `l + 32 s` goes to bits `2s` of byte `l`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for half in 0..2 {
        for i in 0..32 {
            let j = half * 128 + i;
            qs[half * 32 + i] = l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6);
        }
    }
}

fn quantize_q2_k(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let w: Vec<f32> = xs.iter().map(|v| v.abs()).collect();
        let (s, m) = make_qkx2_quants(3, xs, &w, &mut l[16 * j..16 * j + 16], -0.5, 0.1, 15, true);
        scales[j] = s;
        mins[j] = m;
        max_scale = max_scale.max(s);
        max_min = max_min.max(m);
    }
    let mut sc = [0u8; 16];
    let d = if max_scale > 0.0 {
        let is = 15.0 / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(is * scales[j]).clamp(0, 15) as u8;
        }
        max_scale / 15.0
    } else {
        0.0
    };
    let dmin = if max_min > 0.0 {
        let is = 15.0 / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(is * mins[j]).clamp(0, 15) as u8) << 4;
        }
        max_min / 15.0
    } else {
        0.0
    };
    // Round-trip the f16 super-scales, as the dequantizer will see them.
    let (d, dmin) = (half::f16::from_f32(d).to_f32(), half::f16::from_f32(dmin).to_f32());
    for j in 0..16 {
        let dj = d * (sc[j] & 0xF) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * (sc[j] >> 4) as f32;
        for i in 0..16 {
            l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / dj).clamp(0, 3) as u8;
        }
    }
    b[0..16].copy_from_slice(&sc);
    pack_2bit(&l, &mut b[16..80]);
    put_f16(b, 80, d);
    put_f16(b, 82, dmin);
}

fn quantize_q3_k(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_qx_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    let mut packed = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            let v = (nearest_int(iscale * s).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                packed[j] = v & 0xF;
            } else {
                packed[j - 8] |= (v & 0xF) << 4;
            }
            packed[8 + j % 4] |= (v >> 4) << (2 * (j / 4));
        }
        1.0 / iscale
    } else {
        0.0
    };
    let d = half::f16::from_f32(d).to_f32();
    let sc = super::kquants::q3_scales(&packed);
    for j in 0..16 {
        let dj = d * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / dj).clamp(-4, 3) + 4) as u8;
        }
    }
    let mut hmask = [0u8; 32];
    for (j, v) in l.iter_mut().enumerate() {
        if *v > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            *v -= 4;
        }
    }
    b[0..32].copy_from_slice(&hmask);
    pack_2bit(&l, &mut b[32..96]);
    b[96..108].copy_from_slice(&packed);
    put_f16(b, 108, d);
}

/// Q4_K and Q5_K share the scale/min search and packing; `bits` is 4 or 5.
fn quantize_q45_k(x: &[f32], b: &mut [u8], bits: u32) {
    let nmax = (1i32 << bits) - 1;
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let av_x = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        let w: Vec<f32> = xs.iter().map(|v| av_x + v.abs()).collect();
        let (rmin, nstep) = if bits == 4 { (-1.0, 20) } else { (-0.5, 15) };
        let (s, m) = make_qkx2_quants(nmax, xs, &w, &mut l[32 * j..32 * j + 32], rmin, 0.1, nstep, false);
        scales[j] = s;
        mins[j] = m;
        max_scale = max_scale.max(s);
        max_min = max_min.max(m);
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = nearest_int(inv_scale * scales[j]).clamp(0, 63) as u8;
        let lm = nearest_int(inv_min * mins[j]).clamp(0, 63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = half::f16::from_f32(max_scale / 63.0).to_f32();
    let dmin = half::f16::from_f32(max_min / 63.0).to_f32();
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for i in 0..32 {
            l[32 * j + i] = nearest_int((x[32 * j + i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    put_f16(b, 0, d);
    put_f16(b, 2, dmin);
    b[4..16].copy_from_slice(&packed);
    if bits == 4 {
        for c in 0..4 {
            for i in 0..32 {
                b[16 + c * 32 + i] = l[c * 64 + i] | (l[c * 64 + 32 + i] << 4);
            }
        }
    } else {
        let mut qh = [0u8; 32];
        for c in 0..4 {
            for i in 0..32 {
                let (mut lo, mut hi) = (l[c * 64 + i], l[c * 64 + 32 + i]);
                if lo > 15 {
                    lo -= 16;
                    qh[i] |= 1 << (2 * c);
                }
                if hi > 15 {
                    hi -= 16;
                    qh[i] |= 1 << (2 * c + 1);
                }
                b[48 + c * 32 + i] = lo | (hi << 4);
            }
        }
        b[16..48].copy_from_slice(&qh);
    }
}

fn quantize_q6_k(x: &[f32], b: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > max_abs {
            max_abs = scales[j].abs();
            max_scale = scales[j];
        }
    }
    if max_abs < GROUP_MAX_EPS {
        b.fill(0);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = half::f16::from_f32(1.0 / iscale).to_f32();
    let mut sc = [0i8; 16];
    for j in 0..16 {
        sc[j] = nearest_int(iscale * scales[j]).clamp(-128, 127) as i8;
    }
    for j in 0..16 {
        let dj = d * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    for half in 0..2 {
        let qh = 128 + 32 * half;
        for i in 0..32 {
            let j = half * 128 + i;
            let (a, b1, c, e) = (l[j], l[j + 32], l[j + 64], l[j + 96]);
            b[64 * half + i] = (a & 0xF) | ((c & 0xF) << 4);
            b[64 * half + i + 32] = (b1 & 0xF) | ((e & 0xF) << 4);
            b[qh + i] = (a >> 4) | ((b1 >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
        }
    }
    for j in 0..16 {
        b[192 + j] = sc[j] as u8;
    }
    put_f16(b, 208, d);
}

/// Quantizes whole K blocks of `src` into `dst`.
pub(super) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(ty.block_bytes())) {
        match ty {
            GgmlType::Q2_K => quantize_q2_k(x, b),
            GgmlType::Q3_K => quantize_q3_k(x, b),
            GgmlType::Q4_K => quantize_q45_k(x, b, 4),
            GgmlType::Q5_K => quantize_q45_k(x, b, 5),
            GgmlType::Q6_K => quantize_q6_k(x, b),
            _ => unreachable!("kquant_search::quantize called with {ty}"),
        }
    }
}
