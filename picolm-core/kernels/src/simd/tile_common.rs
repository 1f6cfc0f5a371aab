//! The plumbing the tile and matrix-vector kernels share (today the x86-64 ones): the block layouts they read,
//! with every block size derived from [`GgmlType`] instead of written as a literal, the slice checks of their safe
//! wrappers, and the per-token pointers the checked kernels then follow.
//!
//! Block layouts of the activation formats (the weight formats' field offsets are commented where the kernels
//! read them):
//! - Q8_0: f16 `d` at 0, `i8 qs[32]` at [`Q8_0_QS`].
//! - Q8_1: f16 `d` at 0, f16 `s = d * sum(qs)` at 2, `i8 qs[32]` at [`Q8_1_QS`].
//! - Q8_K: f32 `d` at 0, `i8 qs[256]` at [`Q8K_QS`], `i16 bsums[16]` (sums of 16 quants) at [`Q8K_BSUMS`].

use super::{scales_per_block, ActivationRows, TileShape};
use crate::ggml_type::GgmlType;

/// Bytes of one Q4_0 block (f16 `d`, 16 bytes of nibbles).
pub(super) const Q4_0_BYTES: usize = GgmlType::Q4_0.block_bytes();
/// Bytes of one Q4_1 block (f16 `d`, f16 `m`, 16 bytes of nibbles).
pub(super) const Q4_1_BYTES: usize = GgmlType::Q4_1.block_bytes();
/// Bytes of one Q8_0 block.
pub(super) const Q8_0_BYTES: usize = GgmlType::Q8_0.block_bytes();
/// Bytes of one Q8_1 block.
pub(super) const Q8_1_BYTES: usize = GgmlType::Q8_1.block_bytes();
/// Bytes of one Q4_K block.
pub(super) const Q4_K_BYTES: usize = GgmlType::Q4_K.block_bytes();
/// Bytes of one Q6_K block.
pub(super) const Q6_K_BYTES: usize = GgmlType::Q6_K.block_bytes();
/// Bytes of one Q8_K block.
pub(super) const Q8_K_BYTES: usize = GgmlType::Q8_K.block_bytes();

/// Offset of the quants in a Q8_0 block (after its f16 scale).
pub(super) const Q8_0_QS: usize = 2;
/// Offset of the quants in a Q8_1 block (after its f16 scale and sum term).
pub(super) const Q8_1_QS: usize = 4;
/// Offset of the quants in a Q8_K block (after its f32 scale).
pub(super) const Q8K_QS: usize = 4;
/// Offset of the sixteen i16 sums of 16 quants in a Q8_K block (after its 256 quants).
pub(super) const Q8K_BSUMS: usize = Q8K_QS + 256;

const _: () = assert!(Q8_0_QS + 32 == Q8_0_BYTES && Q8_1_QS + 32 == Q8_1_BYTES);
const _: () = assert!(Q8K_BSUMS + 2 * 16 == Q8_K_BYTES && GgmlType::Q8_K.block_size() == 256);

/// What the length checks of a kernel's safe wrapper need to know of its formats: the weights' block, and the
/// block of their dot-product (activation) format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    /// Values per block.
    pub block: usize,
    /// Bytes of one weight block.
    pub w_bytes: usize,
    /// Bytes of one activation block.
    pub x_bytes: usize,
    /// Whether the kernel reads [`ActivationRows::scales`] and [`ActivationRows::sums`].
    pub x_scales: bool,
}

impl Layout {
    /// Weights of type `w` against activations of type `x` (`w`'s dot-product format).
    pub const fn new(w: GgmlType, x: GgmlType) -> Layout {
        Layout {
            block: w.block_size(),
            w_bytes: w.block_bytes(),
            x_bytes: x.block_bytes(),
            x_scales: scales_per_block(x) > 0,
        }
    }
}

/// Q4_0 weights against Q8_0 activations.
pub(super) const L_Q4_0: Layout = Layout::new(GgmlType::Q4_0, GgmlType::Q8_0);
/// Q4_1 weights against Q8_1 activations.
pub(super) const L_Q4_1: Layout = Layout::new(GgmlType::Q4_1, GgmlType::Q8_1);
/// Q8_0 weights against Q8_0 activations.
pub(super) const L_Q8_0: Layout = Layout::new(GgmlType::Q8_0, GgmlType::Q8_0);
/// Q4_K weights against Q8_K activations.
pub(super) const L_Q4_K: Layout = Layout::new(GgmlType::Q4_K, GgmlType::Q8_K);
/// Q6_K weights against Q8_K activations.
pub(super) const L_Q6_K: Layout = Layout::new(GgmlType::Q6_K, GgmlType::Q8_K);

/// Checks every slice a tile will read; returns the number of blocks per row. Panics on a caller bug.
#[allow(clippy::too_many_arguments)] // the arguments of a `TileFn` call plus the kernel's layout and tile height
pub(super) fn check(
    n: usize,
    l: &Layout,
    (max_rows, max_tokens): (usize, usize),
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &[f32],
) -> usize {
    assert!(n.is_multiple_of(l.block), "row length {n} is not a multiple of {}", l.block);
    let nb = n / l.block;
    assert!((1..=max_tokens).contains(&shape.tokens), "tile of {} tokens", shape.tokens);
    assert!((1..=max_rows).contains(&shape.rows), "tile of {} rows", shape.rows);
    assert!(
        out.len() >= (shape.rows - 1) * shape.ld + shape.tokens && shape.ld >= shape.tokens,
        "tile output too short"
    );
    assert!(w_row_bytes >= nb * l.w_bytes, "weight rows too short for {n} values");
    assert!(w.len() >= (shape.rows - 1) * w_row_bytes + nb * l.w_bytes, "weight tile too short");
    let last = first + shape.tokens;
    assert!(x.blocks_per_row == nb, "activations of {} blocks for {nb}", x.blocks_per_row);
    assert!(x.row_bytes >= nb * l.x_bytes && x.bytes.len() >= last * x.row_bytes, "activations too short");
    if l.x_scales {
        assert!(x.scales_per_block > 0, "activation scales missing");
        assert!(
            x.scales.len() >= last * nb * x.scales_per_block && x.sums.len() >= last * nb,
            "activation scales too short"
        );
    }
    nb
}

/// Pointers of one token of a tile: its activation row, its f32 block scales and its block sums.
#[derive(Clone, Copy)]
pub(super) struct Tok {
    pub x: *const u8,
    pub s: *const f32,
    pub sum: *const i32,
}

/// The pointers of tokens `first .. first + NT` (lengths checked by [`check`]).
pub(super) fn toks<const NT: usize>(x: &ActivationRows<'_>, first: usize) -> [Tok; NT] {
    let per_row = x.blocks_per_row * x.scales_per_block;
    let sums_per_row = if x.scales_per_block > 0 { x.blocks_per_row } else { 0 };
    std::array::from_fn(|i| Tok {
        x: x.bytes[(first + i) * x.row_bytes..].as_ptr(),
        s: x.scales[(first + i) * per_row..].as_ptr(),
        sum: x.sums[(first + i) * sums_per_row..].as_ptr(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout pairs its weight format with that format's dot-product format, as the matmul converts them.
    #[test]
    fn layouts_pair_each_weight_format_with_its_dot_product_format() {
        for (ty, l) in [
            (GgmlType::Q4_0, L_Q4_0),
            (GgmlType::Q4_1, L_Q4_1),
            (GgmlType::Q8_0, L_Q8_0),
            (GgmlType::Q4_K, L_Q4_K),
            (GgmlType::Q6_K, L_Q6_K),
        ] {
            let x = crate::quant::vec_dot_type(ty);
            assert_eq!(l, Layout::new(ty, x), "{ty}");
            assert_eq!(x.block_size(), ty.block_size(), "{ty}");
        }
    }
}
