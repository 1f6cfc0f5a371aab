//! Tests of the scalar reference kernels: known answers for hand-built blocks, quantize/dequantize error bounds
//! derived from each format, and the dot products against f32 dots of dequantized values.

use super::*;

fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn quant(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut b = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    quantize_row(ty, x, &mut b).unwrap();
    b
}

fn dequant(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    dequantize_row(ty, b, &mut y).unwrap();
    y
}

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Largest relative RMS error a format may show on uniform random data (bits of precision per value).
fn rms_bound(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 => 1e-7,
        GgmlType::F16 => 1e-3,
        GgmlType::BF16 => 8e-3,
        GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K => 0.01,
        GgmlType::Q6_K => 0.03,
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 0.06,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K => 0.12,
        GgmlType::Q3_K => 0.25,
        GgmlType::Q2_K => 0.5,
    }
}

#[test]
fn round_trip_error_is_within_the_format_bound() {
    for ty in GgmlType::ALL {
        for (seed, scale) in [(1u64, 1.0f32), (2, 1e-3), (3, 300.0)] {
            let x = values(seed, 1024, scale);
            let y = dequant(ty, &quant(ty, &x), x.len());
            let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!(y.iter().all(|v| v.is_finite()), "{ty}: non-finite output");
            assert!(err / norm <= rms_bound(ty), "{ty} scale {scale}: relative RMS error {}", err / norm);
        }
        // All-zero blocks come back as zeros.
        let z = vec![0f32; 512];
        assert!(dequant(ty, &quant(ty, &z), 512).iter().all(|&v| v == 0.0), "{ty}: zeros");
    }
}

#[test]
fn q8_0_error_is_at_most_half_a_step_per_block() {
    let x = values(9, 256, 5.0);
    let y = dequant(GgmlType::Q8_0, &quant(GgmlType::Q8_0, &x), 256);
    for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
        let d = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (a, b) in xb.iter().zip(yb) {
            // Half a step, plus the f16 rounding of the stored scale (2^-11 relative) times |q| <= 127.
            assert!((a - b).abs() <= d * (0.5 + 127.0 / 2048.0) + 1e-6, "{a} vs {b}, step {d}");
        }
    }
}

#[test]
fn known_answer_blocks() {
    // Q4_0: d = 2.0; qs[0] = 0x1F -> value 0 = (0xF - 8) * 2 = 14, value 16 = (0x1 - 8) * 2 = -14.
    let mut b = vec![0u8; 18];
    put_f16(&mut b, 0, 2.0);
    b[2] = 0x1F;
    let y = dequant(GgmlType::Q4_0, &b, 32);
    assert_eq!((y[0], y[16], y[1]), (14.0, -14.0, -16.0));
    // Q4_1: d = 0.5, m = -1; qs[3] = 0xA2 -> value 3 = 2*0.5-1 = 0, value 19 = 10*0.5-1 = 4.
    let mut b = vec![0u8; 20];
    put_f16(&mut b, 0, 0.5);
    put_f16(&mut b, 2, -1.0);
    b[4 + 3] = 0xA2;
    let y = dequant(GgmlType::Q4_1, &b, 32);
    assert_eq!((y[3], y[19], y[0]), (0.0, 4.0, -1.0));
    // Q5_0: d = 1; qh bit 5 set -> value 5 = (0 | 16) - 16 = 0; others (0 - 16) = -16.
    let mut b = vec![0u8; 22];
    put_f16(&mut b, 0, 1.0);
    b[2] = 1 << 5;
    let y = dequant(GgmlType::Q5_0, &b, 32);
    assert_eq!((y[5], y[4]), (0.0, -16.0));
    // Q8_0: d = 0.25, qs[7] = -8 -> -2.
    let mut b = vec![0u8; 34];
    put_f16(&mut b, 0, 0.25);
    b[2 + 7] = (-8i8) as u8;
    assert_eq!(dequant(GgmlType::Q8_0, &b, 32)[7], -2.0);
    // Q6_K: d = 1, scale[0] = 2, ql[0] = 0x05, qh[0] = 0b01 -> value 0 = ((5 | 1<<4) - 32) * 2 = -22.
    let mut b = vec![0u8; 210];
    put_f16(&mut b, 208, 1.0);
    b[192] = 2;
    b[0] = 0x05;
    b[128] = 0x01;
    assert_eq!(dequant(GgmlType::Q6_K, &b, 256)[0], -22.0);
    // Q4_K: d = 1, dmin = 1, sub-block 0 scale 3 min 2; qs[0] = 0x07 -> value 0 = 3*7 - 2 = 19.
    let mut b = vec![0u8; 144];
    put_f16(&mut b, 0, 1.0);
    put_f16(&mut b, 2, 1.0);
    b[4] = 3;
    b[8] = 2;
    b[16] = 0x07;
    assert_eq!(dequant(GgmlType::Q4_K, &b, 256)[0], 19.0);
}

#[test]
fn vec_dot_matches_dequantized_dot() {
    for ty in WEIGHT_TYPES {
        for (seed, n) in [(11u64, 256usize), (12, 1024)] {
            let w = quant(ty, &values(seed, n, 1.0));
            let x = values(seed + 1, n, 2.0);
            let xt = vec_dot_type(ty);
            let xq = quant(xt, &x);
            let got = vec_dot(ty, n, &w, &xq).unwrap();
            let wd = dequant(ty, &w, n);
            let xd = dequant(xt, &xq, n);
            let want: f64 = wd.iter().zip(&xd).map(|(a, b)| *a as f64 * *b as f64).sum();
            let mag: f64 = wd.iter().zip(&xd).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            assert!(((got as f64) - want).abs() <= 1e-4 * mag + 1e-5, "{ty} n={n}: {got} vs {want}");
        }
    }
}

#[test]
fn checked_entry_points_refuse_bad_lengths() {
    let mut y = [0f32; 32];
    assert!(matches!(dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut y), Err(QuantError::LengthMismatch { .. })));
    assert!(matches!(
        dequantize_row(GgmlType::Q4_0, &[0u8; 18], &mut y[..31]),
        Err(QuantError::NotBlockMultiple { .. })
    ));
    assert!(matches!(quantize_row(GgmlType::Q8_0, &y, &mut [0u8; 33]), Err(QuantError::LengthMismatch { .. })));
    assert!(vec_dot(GgmlType::Q8_K, 256, &[0; 292], &[0; 292]).is_err());
    assert!(vec_dot(GgmlType::Q4_0, 32, &[0; 18], &[0; 33]).is_err());
}
