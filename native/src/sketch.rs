//! The set-difference sketch (cleanroom/privacy/setdiff.py): each record counted in the
//! bucket chosen by a keyed BLAKE2b (RFC 7693, 4-byte digest) of its digests joined by "|",
//! a missing or empty digest written "-"; the bucket is the digest as a little-endian
//! integer modulo BUCKETS.

pub const BUCKETS: usize = 1 << 16;
const EMPTY: &[u8] = b"-";

/// BLAKE2b's key is at most 64 bytes.
pub const MAX_KEY: usize = 64;

/// The bucket of one record; `key` is at most MAX_KEY bytes (the caller checks).
pub fn bucket(record: &[Option<&[u8]>], key: &[u8]) -> usize {
    let mut state = blake2b_simd::Params::new()
        .hash_length(4)
        .key(key)
        .to_state();
    for (i, digest) in record.iter().enumerate() {
        if i > 0 {
            state.update(b"|");
        }
        state.update(match digest {
            Some(d) if !d.is_empty() => d,
            _ => EMPTY,
        });
    }
    let hash = state.finalize();
    let bytes: [u8; 4] = hash.as_bytes().try_into().expect("hash_length(4)");
    u32::from_le_bytes(bytes) as usize % BUCKETS
}

/// Add the records (`columns[k][r]` is digest k of record r) to `counts`.
pub fn count_into(
    columns: &[Vec<Option<&[u8]>>],
    range: std::ops::Range<usize>,
    key: &[u8],
    counts: &mut [u32],
) {
    let mut record = Vec::with_capacity(columns.len());
    for r in range {
        record.clear();
        record.extend(columns.iter().map(|column| column[r]));
        counts[bucket(&record, key)] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_blake2b_of_the_joined_record() {
        let record: [Option<&[u8]>; 3] = [Some(b"ab"), None, Some(b"cd")];
        let expected = blake2b_simd::Params::new()
            .hash_length(4)
            .key(b"k")
            .hash(b"ab|-|cd");
        let expected =
            u32::from_le_bytes(expected.as_bytes().try_into().unwrap()) as usize % BUCKETS;
        assert_eq!(bucket(&record, b"k"), expected);
        let empty: [Option<&[u8]>; 3] = [Some(b"ab"), Some(b""), Some(b"cd")];
        assert_eq!(bucket(&empty, b"k"), expected);
    }
}
