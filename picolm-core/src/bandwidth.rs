//! A small STREAM-like read benchmark: the memory read bandwidth one or several threads reach, the ceiling of
//! decode speed (decode reads every weight once per token, so tokens/s <= bandwidth / weight bytes per token).

use std::time::Instant;

use crate::error::Error;

/// Buffer size of [`read_bandwidth`] by default: far larger than any CPU's last-level cache.
pub const DEFAULT_BYTES: usize = 256 << 20;

/// Timed passes over the buffer (after one untimed pass that faults it in); the fastest counts.
const PASSES: usize = 4;

/// Bytes per second `threads` threads read from a buffer of `bytes` (each thread sums its own contiguous share,
/// as decode threads stream their own rows). Errors on zero threads, a buffer smaller than 1 MiB per thread, or a
/// failed allocation.
pub fn read_bandwidth(threads: usize, bytes: usize) -> Result<f64, Error> {
    if threads == 0 || bytes / threads.max(1) < 1 << 20 {
        return Err(Error::InvalidArgument {
            name: "bandwidth".into(),
            why: format!("{bytes} bytes for {threads} threads: need at least 1 thread and 1 MiB per thread"),
        });
    }
    let words = bytes / 8;
    let mut buf: Vec<u64> = Vec::new();
    buf.try_reserve_exact(words).map_err(|e| Error::InvalidArgument {
        name: "bandwidth".into(),
        why: format!("cannot allocate {bytes} bytes: {e}"),
    })?;
    buf.extend((0..words as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let share = words.div_ceil(threads);
    let mut best = f64::INFINITY;
    let mut checksum = 0u64;
    for pass in 0..=PASSES {
        let t0 = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = buf.chunks(share).map(|part| s.spawn(move || sum_words(part))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        checksum = checksum.wrapping_add(sums.iter().fold(0u64, |a, b| a.wrapping_add(*b)));
        if pass > 0 {
            best = best.min(secs);
        }
    }
    // The checksum keeps the reads from being optimised away.
    std::hint::black_box(checksum);
    Ok(bytes as f64 / best.max(1e-9))
}

/// Wrapping sum of `words` with eight independent accumulators (the compiler vectorises it): a pure read stream.
fn sum_words(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*w);
        }
    }
    let tail = rest.iter().fold(0u64, |a, b| a.wrapping_add(*b));
    acc.iter().fold(tail, |a, b| a.wrapping_add(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_is_positive_and_bad_sizes_are_refused() {
        let gbps = read_bandwidth(1, 8 << 20).unwrap() / 1e9;
        assert!(gbps > 0.05 && gbps < 10_000.0, "{gbps} GB/s");
        assert!(read_bandwidth(0, 8 << 20).is_err());
        assert!(read_bandwidth(4, 1 << 20).is_err());
    }

    #[test]
    fn the_sum_reads_every_word() {
        let words: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum_words(&words), 1003 * 1004 / 2);
    }
}
