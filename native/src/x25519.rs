//! X25519 (RFC 7748) over packed 32-byte u-coordinates, with cleanroom's validation.
//!
//! Every received element must be canonical (u < p, so the top bit is clear) and must not
//! be of low order: the clamped key is a multiple of the cofactor, so X25519 of a low-order
//! point is all zeros, and that output is refused (RFC 7748 section 6.1). The portable
//! multiplication is curve25519-dalek's (`EdwardsPoint::mul_clamped` through the birational
//! map for points of the curve, the Montgomery ladder `MontgomeryPoint::mul_clamped` for
//! points of the twist);
//! on CPUs with AVX-512 IFMA the batch goes through Intel crypto_mb instead (`crypto_mb.rs`),
//! with the same checks around it, so both paths give the same bytes.

use curve25519_dalek::montgomery::MontgomeryPoint;

pub const ELEMENT: usize = 32;

/// p = 2^255 - 19, little-endian.
const P_BYTES: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The canonical u-coordinates of low order on the curve or its twist (RFC 7748 section 7,
/// the list of Bernstein's "Curve25519: new Diffie-Hellman speed records" page). The ladder
/// maps each to all zeros, which `x25519` refuses; crypto_mb is not trusted to (it returns
/// a non-zero value for p - 1), so its path refuses these inputs up front.
pub const LOW_ORDER: [[u8; 32]; 5] = [
    // 0 (order 4)
    [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // 1 (order 1)
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // order 8
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    // order 8
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    // p - 1 (order 2)
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// A received element or a result failed a check; deliberately says nothing about which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// u < p as integers (little-endian); the element comes from the peer, not a secret.
pub fn is_canonical(u: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if u[i] != P_BYTES[i] {
            return u[i] < P_BYTES[i];
        }
    }
    false
}

/// The all-zero output of a low-order input (RFC 7748 section 6.1).
pub fn is_zero(out: &[u8; 32]) -> bool {
    out.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// X25519(key, u) with the checks above, portable implementation.
pub fn x25519(key: &[u8; 32], u: &[u8; 32]) -> Result<[u8; 32], Invalid> {
    if !is_canonical(u) {
        return Err(Invalid);
    }
    let point = MontgomeryPoint(*u);
    // A point of the curve goes through edwards25519, whose scalar multiplication uses
    // dalek's AVX2 / AVX-512 backends where the CPU has them (about 1.6x the serial ladder);
    // the birational map is a group isomorphism and X25519's u depends only on +-P, so the
    // bytes are the ladder's. A point of the twist has no Edwards image: the ladder.
    let out = match point.to_edwards(0) {
        Some(edwards) => edwards.mul_clamped(*key).to_montgomery(),
        None => point.mul_clamped(*key),
    }
    .to_bytes();
    if is_zero(&out) {
        return Err(Invalid);
    }
    Ok(out)
}

/// X25519 of each element of `input` into `out` (same length, a multiple of 32), portable.
pub fn x25519_into(key: &[u8; 32], input: &[u8], out: &mut [u8]) -> Result<(), Invalid> {
    if input.len() % ELEMENT != 0 || out.len() != input.len() {
        return Err(Invalid);
    }
    for (src, dst) in input
        .chunks_exact(ELEMENT)
        .zip(out.chunks_exact_mut(ELEMENT))
    {
        let u: &[u8; 32] = src.try_into().map_err(|_| Invalid)?;
        dst.copy_from_slice(&x25519(key, u)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn rfc7748_section_5_2_vectors() {
        let k = h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        let u = h32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        assert_eq!(
            hex::encode(x25519(&k, &u).unwrap()),
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
        );
    }

    #[test]
    fn refuses_low_order_and_non_canonical() {
        let k = [7u8; 32];
        assert_eq!(x25519(&k, &[0u8; 32]), Err(Invalid));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(x25519(&k, &one), Err(Invalid));
        assert_eq!(x25519(&k, &P_BYTES), Err(Invalid));
        let mut high = [0u8; 32];
        high[0] = 9;
        high[31] = 0x80;
        assert_eq!(x25519(&k, &high), Err(Invalid));
        let mut below_p = P_BYTES;
        below_p[0] -= 1;
        assert!(is_canonical(&below_p));
    }

    #[test]
    fn listed_low_order_points_are_refused_by_the_ladder_too() {
        for u in LOW_ORDER {
            assert_eq!(x25519(&[0x42; 32], &u), Err(Invalid));
        }
    }

    #[test]
    fn the_edwards_route_gives_the_ladders_bytes() {
        let key = [0x42u8; 32];
        for i in 0..200u32 {
            let u = crate::h2c::hash_to_curve(&i.to_le_bytes(), b"x");
            assert_eq!(
                x25519(&key, &u).unwrap(),
                MontgomeryPoint(u).mul_clamped(key).to_bytes()
            );
            // a point of the twist or of the curve, whichever this u is
            let mut other = u;
            other[0] ^= 1;
            if let Ok(out) = x25519(&key, &other) {
                assert_eq!(out, MontgomeryPoint(other).mul_clamped(key).to_bytes());
            }
        }
    }

    #[test]
    fn batch_rejects_ragged_length() {
        let mut out = [0u8; 33];
        assert_eq!(x25519_into(&[1; 32], &[9; 33], &mut out), Err(Invalid));
    }
}
