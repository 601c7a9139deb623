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

/// The records of packed columns: `digests[k]` holds record r's digest for key k at
/// `r * digest_size` when `present[k][r]` is non-zero (a missing digest otherwise), and a
/// brand's `labels[r]` (a segment index) enters as one more field, `s<label>`.
pub struct Packed<'a> {
    pub digests: Vec<&'a [u8]>,
    pub present: Vec<&'a [u8]>,
    pub digest_size: usize,
    pub labels: Option<&'a [u8]>,
}

/// Add the packed records in `range` to `counts`.
pub fn count_packed_into(
    columns: &Packed<'_>,
    range: std::ops::Range<usize>,
    key: &[u8],
    counts: &mut [u32],
) {
    let size = columns.digest_size;
    let names: Vec<Vec<u8>> = (i8::MIN..=i8::MAX)
        .map(|label| format!("s{label}").into_bytes())
        .collect();
    let mut record: Vec<Option<&[u8]>> = Vec::with_capacity(columns.digests.len() + 1);
    for r in range {
        record.clear();
        record.extend(
            columns
                .digests
                .iter()
                .zip(&columns.present)
                .map(|(digests, present)| {
                    (present[r] != 0).then(|| &digests[r * size..(r + 1) * size])
                }),
        );
        if let Some(labels) = columns.labels {
            let label = labels[r] as i8;
            record.push(Some(&names[(label as i16 - i8::MIN as i16) as usize]));
        }
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

    #[test]
    fn packed_equals_the_per_record_columns() {
        let digests: Vec<u8> = (0..3 * 4).map(|i| i as u8).collect();
        let present = [1u8, 0, 1];
        let labels = [2u8, 0, 1];
        let packed = Packed {
            digests: vec![&digests],
            present: vec![&present],
            digest_size: 4,
            labels: Some(&labels),
        };
        let mut counts = vec![0u32; BUCKETS];
        count_packed_into(&packed, 0..3, b"k", &mut counts);
        let column: Vec<Option<&[u8]>> = vec![Some(&digests[0..4]), None, Some(&digests[8..12])];
        let names: Vec<&[u8]> = vec![b"s2", b"s0", b"s1"];
        let mut expected = vec![0u32; BUCKETS];
        let columns = vec![column, names.into_iter().map(Some).collect()];
        count_into(&columns, 0..3, b"k", &mut expected);
        assert_eq!(counts, expected);
    }
}
