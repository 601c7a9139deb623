//! RFC 9380 hash to curve, suite curve25519_XMD:SHA-512_ELL2_RO_, on curve25519-dalek.
//!
//! curve25519-dalek implements the edwards25519 suite (`EdwardsPoint::hash_to_curve`,
//! RFC 9380 section 6.8.2 over Elligator 2 of section 6.7.1, hash_to_field with
//! expand_message_xmd). The curve25519 suite maps the same field elements with the same
//! Elligator 2 map and adds and clears the cofactor on the Montgomery curve instead; the
//! birational map of RFC 7748 section 4.1 (u = (1 + y) / (1 - y)) is a group isomorphism, so
//! the curve25519 suite's point is the image of the edwards25519 suite's point for the same
//! message and DST. Its u-coordinate is what X25519 takes, and what this module returns.
//! No field arithmetic is written here.

use curve25519_dalek::edwards::EdwardsPoint;
use sha2::{Digest, Sha512};

pub const ELEMENT: usize = 32;

/// The DST as RFC 9380 section 5.3.3 has expand_message_xmd use it: one over 255 bytes is
/// replaced by H("H2C-OVERSIZE-DST-" || DST). `None` for the empty DST, which the RFC forbids.
pub fn effective_dst(dst: &[u8]) -> Option<Vec<u8>> {
    match dst.len() {
        0 => None,
        1..=255 => Some(dst.to_vec()),
        _ => {
            let mut hasher = Sha512::new();
            hasher.update(b"H2C-OVERSIZE-DST-");
            hasher.update(dst);
            Some(hasher.finalize().to_vec())
        }
    }
}

/// Suite edwards25519_XMD:SHA-512_ELL2_RO_; `dst` already passed through `effective_dst`.
pub fn hash_to_edwards(msg: &[u8], dst: &[u8]) -> EdwardsPoint {
    EdwardsPoint::hash_to_curve::<Sha512>(&[msg], &[dst])
}

/// Suite curve25519_XMD:SHA-512_ELL2_RO_: the point's u-coordinate, 32 bytes little-endian.
pub fn hash_to_curve(msg: &[u8], dst: &[u8]) -> [u8; 32] {
    hash_to_edwards(msg, dst).to_montgomery().to_bytes()
}

/// hash_to_curve of each message into consecutive 32-byte slots of `out`; the inversions of
/// the birational map are batched (`to_montgomery_batch`).
pub fn hash_to_curve_into(messages: &[&[u8]], dst: &[u8], out: &mut [u8]) {
    let points: Vec<EdwardsPoint> = messages.iter().map(|m| hash_to_edwards(m, dst)).collect();
    for (slot, u) in out
        .chunks_exact_mut(ELEMENT)
        .zip(EdwardsPoint::to_montgomery_batch(&points))
    {
        slot.copy_from_slice(u.as_bytes());
    }
}

/// hash_to_curve of `prefix || digest` for each `digest_size`-byte digest of `digests`, into
/// consecutive 32-byte slots of `out`: the messages are never joined in memory (RFC 9380's
/// expand_message_xmd reads the message in parts).
pub fn hash_to_curve_prefixed_into(
    prefix: &[u8],
    digests: &[u8],
    digest_size: usize,
    dst: &[u8],
    out: &mut [u8],
) {
    let points: Vec<EdwardsPoint> = digests
        .chunks_exact(digest_size)
        .map(|digest| EdwardsPoint::hash_to_curve::<Sha512>(&[prefix, digest], &[dst]))
        .collect();
    for (slot, u) in out
        .chunks_exact_mut(ELEMENT)
        .zip(EdwardsPoint::to_montgomery_batch(&points))
    {
        slot.copy_from_slice(u.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: &[u8] = b"QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_RO_";

    #[test]
    fn rfc9380_j_4_1_curve25519_ro() {
        // RFC 9380 Appendix J.4.1, msg = "" and "abc": P.x as a little-endian u.
        let cases: [(&[u8], &str); 2] = [
            (
                b"",
                "2de3780abb67e861289f5749d16d3e217ffa722192d16bbd9d1bfb9d112b98c0",
            ),
            (
                b"abc",
                "2b4419f1f2d48f5872de692b0aca72cc7b0a60915dd70bde432e826b6abc526d",
            ),
        ];
        for (msg, x_big_endian) in cases {
            let mut expected = hex::decode(x_big_endian).unwrap();
            expected.reverse();
            assert_eq!(hash_to_curve(msg, DST).to_vec(), expected);
        }
    }

    #[test]
    fn batch_equals_one_by_one() {
        let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize]).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let mut out = vec![0u8; 32 * refs.len()];
        hash_to_curve_into(&refs, DST, &mut out);
        for (m, slot) in refs.iter().zip(out.chunks_exact(32)) {
            assert_eq!(slot, hash_to_curve(m, DST));
        }
    }

    #[test]
    fn prefixed_equals_the_joined_message() {
        let digests: Vec<u8> = (0..5 * 32).map(|i| i as u8).collect();
        let mut out = vec![0u8; 5 * 32];
        hash_to_curve_prefixed_into(b"email:", &digests, 32, DST, &mut out);
        for (digest, slot) in digests.chunks_exact(32).zip(out.chunks_exact(32)) {
            assert_eq!(slot, hash_to_curve(&[b"email:", digest].concat(), DST));
        }
    }

    #[test]
    fn oversize_dst_is_hashed_and_empty_refused() {
        assert!(effective_dst(b"").is_none());
        assert_eq!(effective_dst(&[7u8; 255]).unwrap().len(), 255);
        assert_eq!(effective_dst(&[7u8; 256]).unwrap().len(), 64);
    }
}
