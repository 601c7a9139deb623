//! SHA-256 (FIPS 180-4, RustCrypto's sha2) of each span of a buffer: the identifiers of a
//! column, as Arrow stores them (one data buffer, offsets).

use sha2::{Digest, Sha256};

pub const DIGEST: usize = 32;

/// Whether `offsets` are non-decreasing and within `data` (so every span can be hashed).
pub fn valid_offsets(offsets: &[i64], data_len: usize) -> bool {
    offsets.windows(2).all(|w| 0 <= w[0] && w[0] <= w[1])
        && offsets
            .last()
            .is_none_or(|&end| end as u64 <= data_len as u64)
}

/// SHA-256 of `data[offsets[i]..offsets[i + 1]]` into consecutive 32-byte slots of `out`.
pub fn sha256_spans_into(data: &[u8], offsets: &[i64], out: &mut [u8]) {
    for (span, slot) in offsets.windows(2).zip(out.chunks_exact_mut(DIGEST)) {
        slot.copy_from_slice(&Sha256::digest(&data[span[0] as usize..span[1] as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_180_vectors() {
        let data = b"abc";
        let mut out = [0u8; 64];
        sha256_spans_into(data, &[0, 0, 3], &mut out);
        assert_eq!(
            hex::encode(&out[..32]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(&out[32..]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn offsets_out_of_range_or_decreasing_are_refused() {
        assert!(valid_offsets(&[0, 2, 3], 3));
        assert!(!valid_offsets(&[0, 4], 3));
        assert!(!valid_offsets(&[2, 1], 3));
        assert!(!valid_offsets(&[-1, 1], 3));
    }
}
