//! X25519 (RFC 7748) over packed 32-byte u-coordinates, with cleanroom's validation.
//!
//! Every received element must be canonical (u < p, so the top bit is clear) and must not
//! be of low order: the clamped key is a multiple of the cofactor, so X25519 of a low-order
//! point is all zeros, and that output is refused (RFC 7748 section 6.1). The portable
//! multiplication is curve25519-dalek's (`EdwardsPoint::mul_clamped` through the birational
//! map for points of the curve, its inversions batched, the Montgomery ladder
//! `MontgomeryPoint::mul_clamped` for points of the twist);
//! on CPUs with AVX-512 IFMA the batch goes through Intel crypto_mb instead (`crypto_mb.rs`),
//! with the same checks around it, so both paths give the same bytes.

use curve25519_dalek::edwards::EdwardsPoint;
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
pub fn is_zero(out: &[u8]) -> bool {
    out.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// Which curve25519-dalek backend this CPU gets, mirroring dalek's run-time choice
/// (`get_selected_backend` in its backend.rs): AVX-512 IFMA when compiled in (the cfg in
/// the repository's `.cargo/config.toml`) and the CPU has it, else AVX2, else serial.
pub fn dalek_backend() -> &'static str {
    #[cfg(all(target_arch = "x86_64", curve25519_dalek_backend = "avx512"))]
    if std::is_x86_feature_detected!("avx512ifma") && std::is_x86_feature_detected!("avx512vl") {
        return "avx512ifma";
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return "avx2";
    }
    "serial"
}

/// X25519(key, u) with the checks above, portable implementation.
pub fn x25519(key: &[u8; 32], u: &[u8; 32]) -> Result<[u8; 32], Invalid> {
    let mut out = [0u8; 32];
    x25519_into(key, u, &mut out)?;
    Ok(out)
}

/// X25519 of each element of `input` into `out` (same length, a multiple of 32), portable.
///
/// A point of the curve goes through edwards25519, whose scalar multiplication uses dalek's
/// AVX2 / AVX-512 IFMA backends where the CPU has them (`dalek_backend`); the birational map
/// is a group isomorphism and X25519's u depends only on +-P, so the bytes are the ladder's.
/// The map back to u takes one field inversion per element, batched over the call with
/// `EdwardsPoint::to_montgomery_batch` (Montgomery's trick, which leaves a zero denominator
/// zero, so the identity still comes out as u = 0 and is refused). A point of the twist has
/// no Edwards image: the ladder.
pub fn x25519_into(key: &[u8; 32], input: &[u8], out: &mut [u8]) -> Result<(), Invalid> {
    if !input.len().is_multiple_of(ELEMENT) || out.len() != input.len() {
        return Err(Invalid);
    }
    let count = input.len() / ELEMENT;
    let mut products = Vec::with_capacity(count);
    let mut product_slots = Vec::with_capacity(count);
    for (slot, (src, dst)) in input
        .chunks_exact(ELEMENT)
        .zip(out.chunks_exact_mut(ELEMENT))
        .enumerate()
    {
        let u: [u8; 32] = src.try_into().map_err(|_| Invalid)?;
        if !is_canonical(&u) {
            return Err(Invalid);
        }
        let point = MontgomeryPoint(u);
        match point.to_edwards(0) {
            Some(edwards) => {
                products.push(edwards.mul_clamped(*key));
                product_slots.push(slot);
            }
            None => dst.copy_from_slice(point.mul_clamped(*key).as_bytes()),
        }
    }
    for (slot, u) in product_slots
        .into_iter()
        .zip(EdwardsPoint::to_montgomery_batch(&products))
    {
        out[slot * ELEMENT..(slot + 1) * ELEMENT].copy_from_slice(u.as_bytes());
    }
    if out.chunks_exact(ELEMENT).any(is_zero) {
        return Err(Invalid);
    }
    Ok(())
}

/// The u-coordinate of the base point, 9 (RFC 7748 section 4.1).
pub const BASE_POINT: [u8; 32] = {
    let mut u = [0u8; 32];
    u[0] = 9;
    u
};

/// X25519(k, u) for each 32-byte key k of `keys` into `out` (same length): many fresh keys,
/// one point, for the partner's dummy matches. The base point takes dalek's fixed-base
/// tables (`EdwardsPoint::mul_base_clamped`); any other point the checks of `x25519_into`.
pub fn x25519_keys_into(keys: &[u8], u: &[u8; 32], out: &mut [u8]) -> Result<(), Invalid> {
    if !keys.len().is_multiple_of(ELEMENT) || out.len() != keys.len() || !is_canonical(u) {
        return Err(Invalid);
    }
    let keys = keys.chunks_exact(ELEMENT).map(|key| {
        let key: [u8; 32] = key.try_into().unwrap_or([0; 32]);
        key
    });
    let point = MontgomeryPoint(*u);
    let products: Vec<EdwardsPoint> = match (*u == BASE_POINT, point.to_edwards(0)) {
        (true, _) => keys.map(EdwardsPoint::mul_base_clamped).collect(),
        (false, Some(edwards)) => keys.map(|key| edwards.mul_clamped(key)).collect(),
        (false, None) => {
            for (key, dst) in keys.zip(out.chunks_exact_mut(ELEMENT)) {
                dst.copy_from_slice(point.mul_clamped(key).as_bytes());
            }
            Vec::new()
        }
    };
    for (dst, result) in out
        .chunks_exact_mut(ELEMENT)
        .zip(EdwardsPoint::to_montgomery_batch(&products))
    {
        dst.copy_from_slice(result.as_bytes());
    }
    if out.chunks_exact(ELEMENT).any(is_zero) {
        return Err(Invalid);
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
    fn a_batch_of_curve_and_twist_points_gives_each_ladder_result() {
        let key = [0x5au8; 32];
        let mut input = Vec::new();
        for i in 0..64u32 {
            let mut u = crate::h2c::hash_to_curve(&i.to_le_bytes(), b"batch");
            if i % 3 == 0 {
                u[0] ^= 1; // about half of these land on the twist
            }
            input.extend_from_slice(&u);
        }
        let mut out = vec![0u8; input.len()];
        x25519_into(&key, &input, &mut out).unwrap();
        for (u, result) in input.chunks_exact(32).zip(out.chunks_exact(32)) {
            let u: [u8; 32] = u.try_into().unwrap();
            assert_eq!(result, MontgomeryPoint(u).mul_clamped(key).as_bytes());
        }
        // one low-order element fails the whole batch, wherever it sits
        input[32 * 40..32 * 41].copy_from_slice(&LOW_ORDER[2]);
        assert_eq!(x25519_into(&key, &input, &mut out), Err(Invalid));
    }

    #[test]
    fn many_keys_on_one_point_give_each_ladder_result() {
        let keys: Vec<u8> = (0..40u8).flat_map(|i| [i.wrapping_mul(37); 32]).collect();
        let on_curve = crate::h2c::hash_to_curve(b"dummy", b"keys");
        let mut on_twist = on_curve;
        let twist = loop {
            on_twist[1] = on_twist[1].wrapping_add(1);
            if MontgomeryPoint(on_twist).to_edwards(0).is_none() {
                break on_twist;
            }
        };
        for u in [BASE_POINT, on_curve, twist] {
            let mut out = vec![0u8; keys.len()];
            x25519_keys_into(&keys, &u, &mut out).unwrap();
            for (key, result) in keys.chunks_exact(32).zip(out.chunks_exact(32)) {
                let key: [u8; 32] = key.try_into().unwrap();
                assert_eq!(result, MontgomeryPoint(u).mul_clamped(key).as_bytes());
            }
        }
        let mut out = vec![0u8; keys.len()];
        assert_eq!(
            x25519_keys_into(&keys, &LOW_ORDER[3], &mut out),
            Err(Invalid)
        );
        assert_eq!(x25519_keys_into(&keys, &P_BYTES, &mut out), Err(Invalid));
        assert_eq!(
            x25519_keys_into(&keys[1..], &BASE_POINT, &mut out[1..]),
            Err(Invalid)
        );
    }

    #[test]
    fn batch_rejects_ragged_length() {
        let mut out = [0u8; 33];
        assert_eq!(x25519_into(&[1; 32], &[9; 33], &mut out), Err(Invalid));
    }
}
