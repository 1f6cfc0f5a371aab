//! The sorts of the engine outside its kernels, through few instantiations of the standard library's sorts.
//!
//! Every `sort`/`sort_by`/`sort_by_key` on a new element type or with a new closure is a new copy of the standard
//! library's sort (5-10 KB of machine code each). The engine's sorts go through the three functions here instead:
//! plain keys as `u64` or `u32`, and anything else as indices sorted by a comparator passed as a trait object. The
//! comparators break every tie (by index), so the unstable sort gives the order a stable sort would.

use std::cmp::Ordering;

/// Sorts `v` ascending (equal values are indistinguishable, so an unstable sort is exact).
#[inline(never)]
pub(crate) fn sort_u64(v: &mut [u64]) {
    v.sort_unstable();
}

/// Sorts `v` ascending (equal values are indistinguishable, so an unstable sort is exact).
#[inline(never)]
pub(crate) fn sort_u32(v: &mut [u32]) {
    v.sort_unstable();
}

/// Sorts the indices `ids` by `cmp`, which must order any two distinct indices (break ties by index: then the
/// result is the one of a stable sort of the same indices in ascending order by the key alone).
#[inline(never)]
pub(crate) fn sort_ids_by(ids: &mut [u32], cmp: &mut dyn FnMut(u32, u32) -> Ordering) {
    ids.sort_unstable_by(|&a, &b| cmp(a, b));
}

/// The indices `0..n` sorted by the key `key` (ascending; equal keys keep index order, as a stable sort would).
pub(crate) fn ids_sorted_by_key<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..n as u32).collect();
    sort_ids_by(&mut ids, &mut |a, b| key(a as usize).cmp(&key(b as usize)).then(a.cmp(&b)));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sorts_are_stable_in_effect() {
        let keys = [3u8, 1, 3, 0, 1, 3, 2, 0];
        let ids = ids_sorted_by_key(keys.len(), |i| keys[i]);
        let mut want: Vec<u32> = (0..keys.len() as u32).collect();
        want.sort_by_key(|&i| keys[i as usize]);
        assert_eq!(ids, want);
        let rev = ids_sorted_by_key(keys.len(), |i| std::cmp::Reverse(keys[i]));
        want.sort_by_key(|&i| std::cmp::Reverse(keys[i as usize]));
        assert_eq!(rev, want);
    }

    #[test]
    fn plain_sorts_sort() {
        let mut a = [5u64, u64::MAX, 0, 5, 1];
        sort_u64(&mut a);
        assert_eq!(a, [0, 1, 5, 5, u64::MAX]);
        let mut b = [7u32, 2, 2, 0];
        sort_u32(&mut b);
        assert_eq!(b, [0, 2, 2, 7]);
    }
}
