//! Baby-step giant-step discrete logarithm base B for |m| <= bound (Shanks 1971).
//!
//! A table holds the low 64 bits of y(j*B) for j in [0, T]; since y(-P) = y(P) one entry
//! covers +-j. The giant steps walk M - i*S and M + i*S with S = (2T + 1)*B, so the table
//! answers every m in [-bound, bound] after ceil((bound - T) / (2T + 1)) steps each way.
//! Points are added in dalek's extended coordinates and compressed in batches (one field
//! inversion per batch, dalek's `compress_batch_alloc`). Every hit is confirmed with a
//! fixed-base multiplication, so a 64-bit key collision can never give a wrong number.
//!
//! The table depends only on T, not on any key, so one process-wide table is kept and
//! rebuilt larger when a larger bound needs it; it holds public multiples of B only.

use std::sync::{Arc, Mutex};

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rayon::prelude::*;

use super::{Invalid, Result};

/// The largest bound decrypt accepts (2^20 giant steps each way with the largest table).
pub const MAX_BOUND: u64 = 1 << 40;
/// T ~ sqrt(EXPECTED_DECRYPTIONS * bound) balances the one-off table build against the
/// giant steps of the decryptions that reuse it.
const EXPECTED_DECRYPTIONS: u64 = 16;
const MIN_TABLE: u64 = 1 << 8;
const MAX_TABLE: u64 = 1 << 20;
/// Points compressed per batch inversion while building the table.
const BUILD_BATCH: u64 = 4096;
/// Giant steps per batch: starts small (few wasted steps for small |m|), doubles up to this.
const GIANT_BATCH: usize = 256;

/// The low 64 bits of y, the lookup key (the sign of x is in the top byte, not here).
fn key(encoded: &[u8; 32]) -> u64 {
    let mut low = [0u8; 8];
    low.copy_from_slice(&encoded[..8]);
    u64::from_le_bytes(low)
}

pub struct BabySteps {
    /// T: the table covers j*B for j in [0, T].
    pub size: u64,
    /// (key, j), sorted by key.
    entries: Vec<(u64, u32)>,
}

impl BabySteps {
    fn build(size: u64) -> BabySteps {
        let base = EdwardsPoint::mul_base(&Scalar::ONE);
        let mut entries: Vec<(u64, u32)> = (0..=size / BUILD_BATCH)
            .into_par_iter()
            .flat_map_iter(|batch| {
                let first = batch * BUILD_BATCH;
                let last = (first + BUILD_BATCH - 1).min(size);
                let mut point = EdwardsPoint::mul_base(&Scalar::from(first));
                let mut points = Vec::with_capacity((last - first + 1) as usize);
                for _ in first..=last {
                    points.push(point);
                    point += base;
                }
                EdwardsPoint::compress_batch_alloc(&points)
                    .into_iter()
                    .zip(first..=last)
                    .map(|(c, j)| (key(c.as_bytes()), j as u32))
                    .collect::<Vec<_>>()
            })
            .collect();
        entries.sort_unstable();
        BabySteps { size, entries }
    }

    /// Every j whose key matches (almost always none or one).
    fn lookup(&self, key: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.entries.partition_point(|&(k, _)| k < key);
        self.entries[start..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, j)| j)
    }
}

/// The table size used for a bound: a power of two in [2^8, 2^20] near sqrt(16 * bound).
pub fn table_size(bound: u64) -> u64 {
    let wanted = (bound.min(MAX_BOUND) * EXPECTED_DECRYPTIONS).isqrt() + 1;
    wanted.next_power_of_two().clamp(MIN_TABLE, MAX_TABLE)
}

/// A table kept for reuse, replaced by a larger one when a bound needs it.
#[derive(Default)]
pub struct TableCache(Mutex<Option<Arc<BabySteps>>>);

impl TableCache {
    pub const fn new() -> TableCache {
        TableCache(Mutex::new(None))
    }

    pub fn for_bound(&self, bound: u64) -> Arc<BabySteps> {
        let size = table_size(bound);
        // A poisoned lock only means a thread panicked mid-build: the Option is still whole.
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match cached.as_ref() {
            Some(table) if table.size >= size => Arc::clone(table),
            _ => {
                let table = Arc::new(BabySteps::build(size));
                *cached = Some(Arc::clone(&table));
                table
            }
        }
    }

    pub fn clear(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// The process-wide table; it holds public multiples of B only.
pub static TABLE: TableCache = TableCache::new();

fn signed_scalar(m: i64) -> Scalar {
    let magnitude = Scalar::from(m.unsigned_abs());
    if m < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// m with m*B = message and |m| <= bound, or Invalid.
pub fn discrete_log(message: &EdwardsPoint, bound: u64) -> Result<i64> {
    if bound > MAX_BOUND {
        return Err(Invalid);
    }
    if message.is_identity() {
        return Ok(0);
    }
    let table = TABLE.for_bound(bound);
    let size = table.size;
    let stride = 2 * size + 1;
    let bound = bound as i64;
    let confirm = |base: i64, j: u32| -> Option<i64> {
        [base + i64::from(j), base - i64::from(j)]
            .into_iter()
            .find(|&m| m.abs() <= bound && EdwardsPoint::mul_base(&signed_scalar(m)) == *message)
    };
    let found_at =
        |base: i64, encoded: &[u8; 32]| table.lookup(key(encoded)).find_map(|j| confirm(base, j));

    if let Some(m) = found_at(0, message.compress().as_bytes()) {
        return Ok(m);
    }
    let giants = (bound as u64).saturating_sub(size).div_ceil(stride);
    let giant = EdwardsPoint::mul_base(&Scalar::from(stride));
    let (mut down, mut up) = (*message, *message);
    let mut done = 0u64;
    let mut batch = 16usize;
    let mut points = Vec::with_capacity(2 * GIANT_BATCH);
    while done < giants {
        let count = (batch as u64).min(giants - done) as usize;
        batch = (2 * batch).min(GIANT_BATCH);
        points.clear();
        for _ in 0..count {
            down -= giant; // message - i*S
            up += giant; // message + i*S
            points.push(down);
            points.push(up);
        }
        let encoded = EdwardsPoint::compress_batch_alloc(&points);
        for (step, pair) in encoded.chunks_exact(2).enumerate() {
            let offset = ((done + step as u64 + 1) * stride) as i64;
            if let Some(m) = found_at(offset, pair[0].as_bytes()) {
                return Ok(m);
            }
            if let Some(m) = found_at(-offset, pair[1].as_bytes()) {
                return Ok(m);
            }
        }
        done += count as u64;
    }
    Err(Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(m: i64) -> EdwardsPoint {
        EdwardsPoint::mul_base(&signed_scalar(m))
    }

    #[test]
    fn table_keys_are_the_encodings_of_small_multiples() {
        let table = TABLE.for_bound(1000);
        for j in [0u32, 1, 2, 3, 100, table.size as u32] {
            let k = key(point(i64::from(j)).compress().as_bytes());
            assert!(table.lookup(k).any(|found| found == j));
            let k_neg = key(point(-i64::from(j)).compress().as_bytes());
            assert_eq!(k, k_neg, "y(-P) = y(P)");
        }
    }

    #[test]
    fn bounds_edges_and_giant_step_boundaries() {
        for bound in [0u64, 1, 7, 1000, 1_000_000] {
            let b = bound as i64;
            assert_eq!(discrete_log(&point(b), bound), Ok(b));
            assert_eq!(discrete_log(&point(-b), bound), Ok(-b));
            for outside in [b + 1, -b - 1, b + 10_000_000] {
                assert_eq!(
                    discrete_log(&point(outside), bound),
                    Err(Invalid),
                    "{outside} {bound}"
                );
            }
        }
        let bound = 1_000_000u64;
        let t = table_size(bound) as i64;
        let s = 2 * t + 1;
        for m in [
            t,
            t + 1,
            s - 1,
            s,
            s + 1,
            3 * s + t,
            3 * s - t,
            -(2 * s + t + 1),
            -s,
        ] {
            assert_eq!(discrete_log(&point(m), bound), Ok(m));
        }
        assert_eq!(discrete_log(&point(5), MAX_BOUND + 1), Err(Invalid));
    }

    #[test]
    fn table_is_cached_and_grown() {
        let cache = TableCache::new();
        let small = cache.for_bound(100);
        assert!(Arc::ptr_eq(&small, &cache.for_bound(50)));
        let large = cache.for_bound(10_000_000);
        assert!(large.size > small.size);
        assert!(Arc::ptr_eq(&large, &cache.for_bound(100)));
        cache.clear();
        assert!(!Arc::ptr_eq(&large, &cache.for_bound(100)));
        assert_eq!(table_size(MAX_BOUND), MAX_TABLE);
        assert_eq!(table_size(0), MIN_TABLE);
    }
}
