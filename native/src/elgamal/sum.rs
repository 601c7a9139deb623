//! Ciphertext sums selected by k attribute masks over n records, with the fewest additions.
//!
//! Every selected ciphertext is decompressed once (the dominant cost: a square root per
//! point); sums are then taken in dalek's extended coordinates and compressed once per mask.
//! With several masks the records are bucketed by their bit pattern over a group of g masks
//! (one addition each) and the buckets folded one bit at a time (about 2^(g+1) additions),
//! so a record costs about ceil(k/g) additions instead of one per mask that selects it. The
//! planner picks g and, per group, the naive or the bucketed way from exact addition counts.
//! Records are processed in blocks so memory stays bounded for any n.

use std::collections::HashMap;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::traits::Identity;
use rayon::prelude::*;

use super::{ciphertext_count, decode, Invalid, Result, CIPHERTEXT_SIZE, POINT_SIZE};

/// Records decoded and summed at a time: 65536 * 320 bytes of decoded points = 20 MiB.
const BLOCK: usize = 1 << 16;
/// Records per rayon task.
const TASK: usize = 1024;
/// Largest group of masks bucketed together (patterns are u32; 2^16 buckets at most).
const MAX_GROUP: usize = 16;
/// More masks than any contract has (attributes x segments), so that a bad `k` with no
/// records is refused instead of allocating k sums.
pub const MAX_MASKS: usize = 1 << 20;

type Pair = [EdwardsPoint; 2];

fn add_pair(a: &Pair, b: &Pair) -> Pair {
    [a[0] + b[0], a[1] + b[1]]
}

fn add_into(total: &mut Option<Pair>, value: &Pair) {
    *total = Some(match total {
        Some(t) => add_pair(t, value),
        None => *value,
    });
}

/// One step of the plan: masks `start..stop`, summed bucketed or one mask at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub start: usize,
    pub stop: usize,
    pub bucketed: bool,
}

/// The k x n masks, one byte (0 or 1) per record, row-major: row j is mask j.
pub struct Masks<'a> {
    pub rows: &'a [u8],
    pub k: usize,
    pub n: usize,
}

impl Masks<'_> {
    fn get(&self, row: usize, record: usize) -> bool {
        self.rows[row * self.n + record] != 0
    }

    /// Per record in `records`, the bit pattern of masks `start..stop` (bit h = mask start + h).
    fn patterns(&self, start: usize, stop: usize, records: std::ops::Range<usize>) -> Vec<u32> {
        let mut out = vec![0u32; records.len()];
        for (h, row) in (start..stop).enumerate() {
            let mask = &self.rows[row * self.n + records.start..row * self.n + records.end];
            for (pattern, &bit) in out.iter_mut().zip(mask) {
                *pattern |= u32::from(bit) << h;
            }
        }
        out
    }
}

/// Exact number of additions [`sum_bucketed`] makes for these g-bit patterns.
pub fn bucketed_cost(patterns: &[u32], g: usize) -> u64 {
    let mut counts = vec![0u64; 1 << g];
    for &p in patterns {
        counts[p as usize] += 1;
    }
    counts[0] = 0;
    let mut present: Vec<bool> = counts.iter().map(|&c| c > 0).collect();
    let mut cost = counts.iter().sum::<u64>() - present.iter().filter(|&&p| p).count() as u64;
    for h in (0..g).rev() {
        let half = 1 << h;
        let (low, high) = present[..2 * half].split_at(half);
        let high_count = high.iter().filter(|&&p| p).count() as u64;
        cost += high_count.saturating_sub(1);
        if h > 0 {
            cost += low.iter().zip(high).filter(|(&l, &hi)| l && hi).count() as u64;
            let mut merged: Vec<bool> = low.iter().zip(high).map(|(&l, &hi)| l || hi).collect();
            merged[0] = false;
            present = merged;
        }
    }
    cost
}

/// Splits the k masks into consecutive groups of g and chooses, per group, the naive or the
/// bucketed summation, minimising the exact number of additions over a few values of g:
/// 1 to 4, and groups of about 6, 8, 11 and 16 masks that split k evenly.
pub fn plan(masks: &Masks, records: std::ops::Range<usize>) -> Vec<Group> {
    let k = masks.k;
    if k == 0 {
        return Vec::new();
    }
    let naive: Vec<u64> = (0..k)
        .map(|j| {
            let selected = (records.clone()).filter(|&i| masks.get(j, i)).count() as u64;
            selected.saturating_sub(1)
        })
        .collect();
    let bits_of_n = (usize::BITS - records.len().leading_zeros()) as usize;
    let max_g = k.min(MAX_GROUP).min(bits_of_n).max(1);
    let mut candidates = vec![1usize, 2, 3, 4];
    for cap in [6usize, 8, 11, 16] {
        let groups = k.div_ceil(cap);
        candidates.push(k.div_ceil(groups));
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut best: Option<(u64, Vec<Group>)> = None;
    for g in candidates.into_iter().filter(|&g| g <= max_g) {
        let mut total = 0u64;
        let mut groups = Vec::new();
        for start in (0..k).step_by(g) {
            let stop = (start + g).min(k);
            let naive_cost: u64 = naive[start..stop].iter().sum();
            let cost_bucketed = if stop - start > 1 {
                bucketed_cost(&masks.patterns(start, stop, records.clone()), stop - start)
            } else {
                u64::MAX
            };
            let bucketed = cost_bucketed < naive_cost;
            total += naive_cost.min(cost_bucketed);
            groups.push(Group {
                start,
                stop,
                bucketed,
            });
        }
        if best.as_ref().is_none_or(|(cost, _)| total < *cost) {
            best = Some((total, groups));
        }
    }
    best.map(|(_, groups)| groups).unwrap_or_default()
}

/// One running sum per mask, each over the records in parallel.
fn sum_naive(
    points: &[Pair],
    masks: &Masks,
    group: Group,
    records: std::ops::Range<usize>,
) -> Vec<Option<Pair>> {
    (group.start..group.stop)
        .map(|row| {
            let mask = &masks.rows[row * masks.n + records.start..row * masks.n + records.end];
            points
                .par_chunks(TASK)
                .zip(mask.par_chunks(TASK))
                .map(|(pts, bits)| {
                    let mut total = None;
                    for (p, &bit) in pts.iter().zip(bits) {
                        if bit != 0 {
                            add_into(&mut total, p);
                        }
                    }
                    total
                })
                .reduce(
                    || None,
                    |a, b| match (a, b) {
                        (Some(a), Some(b)) => Some(add_pair(&a, &b)),
                        (a, None) => a,
                        (None, b) => b,
                    },
                )
        })
        .collect()
}

/// Sums for the g masks of a group at once: bucket each record by its g-bit pattern, then
/// fold the buckets one bit at a time: the sum for bit h is the sum of the buckets having
/// bit h, after which bucket b is merged into bucket b without bit h.
fn sum_bucketed(points: &[Pair], patterns: &[u32], g: usize) -> Vec<Option<Pair>> {
    let mut buckets: HashMap<u32, Pair> = HashMap::new();
    for (p, &pattern) in points.iter().zip(patterns) {
        if pattern != 0 {
            buckets
                .entry(pattern)
                .and_modify(|acc| *acc = add_pair(acc, p))
                .or_insert(*p);
        }
    }
    let mut out = vec![None; g];
    for h in (0..g).rev() {
        let bit = 1u32 << h;
        let having: Vec<u32> = buckets.keys().copied().filter(|b| b & bit != 0).collect();
        for b in &having {
            add_into(&mut out[h], &buckets[b]);
        }
        if h == 0 {
            break;
        }
        for b in having {
            let Some(acc) = buckets.remove(&b) else {
                continue;
            };
            let rest = b ^ bit;
            if rest != 0 {
                buckets
                    .entry(rest)
                    .and_modify(|target| *target = add_pair(target, &acc))
                    .or_insert(acc);
            }
        }
    }
    out
}

/// Decompresses the records selected by any mask (others stay the identity, never read).
fn decode_selected(
    packed: &[u8],
    masks: &Masks,
    records: std::ops::Range<usize>,
) -> Result<Vec<Pair>> {
    let identity = EdwardsPoint::identity();
    let mut points = vec![[identity, identity]; records.len()];
    points
        .par_chunks_mut(TASK)
        .enumerate()
        .try_for_each(|(task, out)| -> Result<()> {
            for (offset, slot) in out.iter_mut().enumerate() {
                let i = records.start + task * TASK + offset;
                if (0..masks.k).any(|j| masks.get(j, i)) {
                    let ct = &packed[i * CIPHERTEXT_SIZE..(i + 1) * CIPHERTEXT_SIZE];
                    *slot = [decode(&ct[..POINT_SIZE])?, decode(&ct[POINT_SIZE..])?];
                }
            }
            Ok(())
        })?;
    Ok(points)
}

/// For each of the k masks (rows of `masks`, k x n bytes 0/1), the sum of the ciphertexts
/// it selects, as k packed ciphertexts. A mask selecting nothing gives the identity
/// ciphertext, which the caller must re-randomise before sending it.
pub fn sum_by_mask(packed: &[u8], masks: &[u8], k: usize) -> Result<Vec<u8>> {
    let n = ciphertext_count(packed)?;
    if k > MAX_MASKS || k.checked_mul(n) != Some(masks.len()) || masks.iter().any(|&b| b > 1) {
        return Err(Invalid);
    }
    let masks = Masks { rows: masks, k, n };
    let mut totals: Vec<Option<Pair>> = vec![None; k];
    for block_start in (0..n).step_by(BLOCK) {
        let records = block_start..(block_start + BLOCK).min(n);
        let points = decode_selected(packed, &masks, records.clone())?;
        let plan = plan(&masks, records.clone());
        let sums: Vec<Vec<Option<Pair>>> = plan
            .par_iter()
            .map(|&group| {
                if group.bucketed {
                    let patterns = masks.patterns(group.start, group.stop, records.clone());
                    sum_bucketed(&points, &patterns, group.stop - group.start)
                } else {
                    sum_naive(&points, &masks, group, records.clone())
                }
            })
            .collect();
        for (group, group_sums) in plan.iter().zip(sums) {
            for (total, sum) in totals[group.start..group.stop].iter_mut().zip(group_sums) {
                if let Some(sum) = sum {
                    add_into(total, &sum);
                }
            }
        }
    }
    let identity = EdwardsPoint::identity();
    let flat: Vec<EdwardsPoint> = totals
        .iter()
        .flat_map(|t| t.unwrap_or([identity, identity]))
        .collect();
    Ok(EdwardsPoint::compress_batch_alloc(&flat)
        .iter()
        .flat_map(|c| c.to_bytes())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elgamal::{encode, zero_ciphertext};
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::scalar::Scalar;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn chance(&mut self, percent: u64) -> u8 {
            u8::from(self.next() % 100 < percent)
        }
    }

    fn points(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let a = ED25519_BASEPOINT_POINT * Scalar::from(3 * i as u64 + 1);
                let b =
                    ED25519_BASEPOINT_POINT * Scalar::from(5 * i as u64 + 2) + EIGHT_TORSION[i % 8];
                [encode(&a), encode(&b)].concat()
            })
            .collect()
    }

    /// The sums the slow obvious way: decode, add per mask, compress.
    fn reference(packed: &[u8], masks: &[u8], k: usize) -> Vec<u8> {
        let n = packed.len() / 64;
        (0..k)
            .flat_map(|j| {
                let mut c = [EdwardsPoint::identity(), EdwardsPoint::identity()];
                for i in 0..n {
                    if masks[j * n + i] == 1 {
                        c[0] += decode(&packed[i * 64..i * 64 + 32]).unwrap();
                        c[1] += decode(&packed[i * 64 + 32..i * 64 + 64]).unwrap();
                    }
                }
                [encode(&c[0]), encode(&c[1])].concat()
            })
            .collect()
    }

    #[test]
    fn every_path_gives_the_obvious_sums() {
        let mut rng = Lcg(5);
        let n = 300;
        let packed = points(n);
        for (k, percent) in [
            (1, 50),
            (3, 50),
            (8, 50),
            (20, 30),
            (5, 2),
            (17, 90),
            (2, 0),
        ] {
            let masks: Vec<u8> = (0..k * n).map(|_| rng.chance(percent)).collect();
            let expected = reference(&packed, &masks, k);
            assert_eq!(
                sum_by_mask(&packed, &masks, k).unwrap(),
                expected,
                "k={k} p={percent}"
            );
            let m = Masks { rows: &masks, k, n };
            for g in 1..=k.min(8) {
                for start in (0..k).step_by(g) {
                    let stop = (start + g).min(k);
                    let group = Group {
                        start,
                        stop,
                        bucketed: true,
                    };
                    let pts = decode_selected(&packed, &m, 0..n).unwrap();
                    let bucketed = sum_bucketed(&pts, &m.patterns(start, stop, 0..n), stop - start);
                    let naive = sum_naive(
                        &pts,
                        &m,
                        Group {
                            bucketed: false,
                            ..group
                        },
                        0..n,
                    );
                    assert_eq!(bucketed.len(), naive.len());
                    for (a, b) in bucketed.iter().zip(&naive) {
                        assert_eq!(
                            a.map(|p| (encode(&p[0]), encode(&p[1]))),
                            b.map(|p| (encode(&p[0]), encode(&p[1])))
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn blocks_are_added_up() {
        let n = BLOCK + 3;
        let one = points(1);
        let packed: Vec<u8> = one.iter().copied().cycle().take(n * 64).collect();
        let masks = vec![1u8; n];
        let sum = sum_by_mask(&packed, &masks, 1).unwrap();
        let p = decode(&one[..32]).unwrap() * Scalar::from(n as u64);
        let q = decode(&one[32..]).unwrap() * Scalar::from(n as u64);
        assert_eq!(sum, [encode(&p), encode(&q)].concat());
    }

    #[test]
    fn cost_model_counts_the_additions() {
        // Count bucket-phase and fold additions exactly as sum_bucketed makes them.
        let mut rng = Lcg(9);
        for (g, percent) in [(2, 40), (5, 40), (7, 80), (4, 5)] {
            let n = 200;
            let patterns: Vec<u32> = (0..n)
                .map(|_| (0..g).fold(0u32, |acc, h| acc | (u32::from(rng.chance(percent)) << h)))
                .collect();
            let mut adds = 0u64;
            let mut buckets: HashMap<u32, ()> = HashMap::new();
            for &p in &patterns {
                if p != 0 && buckets.insert(p, ()).is_some() {
                    adds += 1;
                }
            }
            for h in (0..g).rev() {
                let bit = 1u32 << h;
                let having: Vec<u32> = buckets.keys().copied().filter(|b| b & bit != 0).collect();
                adds += (having.len() as u64).saturating_sub(1);
                if h == 0 {
                    break;
                }
                for b in having {
                    buckets.remove(&b);
                    let rest = b ^ bit;
                    if rest != 0 && buckets.insert(rest, ()).is_some() {
                        adds += 1;
                    }
                }
            }
            assert_eq!(bucketed_cost(&patterns, g), adds);
        }
    }

    #[test]
    fn plan_prefers_buckets_for_dense_masks_and_naive_for_sparse() {
        let mut rng = Lcg(1);
        let n = 2000;
        let dense: Vec<u8> = (0..8 * n).map(|_| rng.chance(50)).collect();
        let groups = plan(
            &Masks {
                rows: &dense,
                k: 8,
                n,
            },
            0..n,
        );
        assert!(groups.iter().any(|g| g.bucketed));
        let covered: Vec<usize> = groups.iter().flat_map(|g| g.start..g.stop).collect();
        assert_eq!(covered, (0..8).collect::<Vec<_>>());
        let mut sparse = vec![0u8; 3 * n];
        sparse[5] = 1;
        sparse[n + 9] = 1;
        sparse[2 * n + 11] = 1;
        assert!(!plan(
            &Masks {
                rows: &sparse,
                k: 3,
                n
            },
            0..n
        )
        .iter()
        .any(|g| g.bucketed));
    }

    #[test]
    fn bad_input_is_refused() {
        let packed = points(3);
        assert_eq!(sum_by_mask(&packed, &[1, 1], 1), Err(Invalid));
        assert_eq!(sum_by_mask(&packed, &[1, 2, 1], 1), Err(Invalid));
        assert_eq!(sum_by_mask(&packed[..100], &[1, 1, 1], 1), Err(Invalid));
        let mut off_curve = packed.clone();
        off_curve[64..96].copy_from_slice(&{
            let mut b = [0u8; 32];
            b[0] = 2; // y = 2 is not on edwards25519
            b
        });
        assert_eq!(sum_by_mask(&off_curve, &[1, 1, 1], 1), Err(Invalid));
        // A record no mask selects is not decoded.
        assert!(sum_by_mask(&off_curve, &[1, 0, 1], 1).is_ok());
        assert_eq!(
            sum_by_mask(&packed, &[0, 0, 0], 1).unwrap(),
            zero_ciphertext().to_vec()
        );
        assert_eq!(sum_by_mask(&packed, &[], 0).unwrap(), Vec::<u8>::new());
        assert_eq!(
            sum_by_mask(&[], &[], 2).unwrap(),
            [zero_ciphertext(); 2].concat()
        );
        assert_eq!(sum_by_mask(&[], &[], usize::MAX), Err(Invalid));
        assert_eq!(sum_by_mask(&[], &[], MAX_MASKS + 1), Err(Invalid));
    }
}
