//! Exponential ElGamal on edwards25519 (Cramer, Gennaro and Schoenmakers, EUROCRYPT '97):
//! `Enc(m; r) = (r*B, m*B + r*pk)`, 64 bytes, two compressed Edwards points (RFC 8032 5.1.2).
//!
//! Every group operation is curve25519-dalek's; this module only decides which encodings
//! to accept. Three levels, each a superset of the checks of the one before:
//! - [`check_encodings`]: the bytes are canonical encodings (`y < p`, no sign bit on `x = 0`);
//! - [`decode`]: that, and a point of the curve (dalek's decompression);
//! - [`decode_prime_order`]: that, in the prime-order subgroup and not the identity.
//!
//! Every failure is the one opaque [`Invalid`]; no input makes these functions panic.

pub mod bsgs;
#[cfg(feature = "python")]
pub mod python;
pub mod sum;

use std::sync::LazyLock;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, IsIdentity};
use rayon::prelude::*;

pub const POINT_SIZE: usize = 32;
pub const CIPHERTEXT_SIZE: usize = 64;
pub const SCALAR_SIZE: usize = 32;
/// 64 random bytes reduced mod l: a uniform scalar, bias below 2^-250.
pub const WIDE_SCALAR_SIZE: usize = 64;

/// The crate's one error (bad lengths, encodings, points or scalars; says nothing about which).
pub use crate::Invalid;

pub type Result<T> = std::result::Result<T, Invalid>;

/// Records per rayon task: big enough that scheduling is noise next to the point arithmetic.
const PARALLEL_CHUNK: usize = 512;

// ------------------------------------------------------------------------------- encodings

/// Whether 32 bytes are the canonical encoding of *some* field element pair: `y < p` and,
/// when the sign bit is set, `x != 0`, i.e. `y` is neither 1 nor `p - 1` (the only `y` with
/// `x = 0` on edwards25519). Byte comparisons only: with a point that decodes, this is
/// exactly "compress(decompress(bytes)) == bytes" (checked in the tests below).
pub fn is_canonical(bytes: &[u8; 32]) -> bool {
    // p = 2^255 - 19, little-endian: ed ff .. ff 7f. p - 1 = ec ff .. ff 7f. 1 = 01 00 .. 00.
    let sign = bytes[31] >> 7;
    let top = bytes[31] & 0x7f;
    let middle_all_ff = bytes[1..31].iter().all(|&b| b == 0xff);
    let y_at_least_p = top == 0x7f && middle_all_ff && bytes[0] >= 0xed;
    if y_at_least_p {
        return false;
    }
    if sign == 1 {
        let y_is_one = bytes[0] == 1 && top == 0 && bytes[1..31].iter().all(|&b| b == 0);
        let y_is_minus_one = bytes[0] == 0xec && top == 0x7f && middle_all_ff;
        return !(y_is_one || y_is_minus_one);
    }
    true
}

fn point_bytes(data: &[u8]) -> Result<&[u8; 32]> {
    data.try_into().map_err(|_| Invalid)
}

/// A canonical encoding of a point of the curve (any torsion).
pub fn decode(data: &[u8]) -> Result<EdwardsPoint> {
    let bytes = point_bytes(data)?;
    if !is_canonical(bytes) {
        return Err(Invalid);
    }
    CompressedEdwardsY(*bytes).decompress().ok_or(Invalid)
}

/// A canonical encoding of a point of the prime-order subgroup other than the identity:
/// what a received public key or a ciphertext to decrypt must be.
pub fn decode_prime_order(data: &[u8]) -> Result<EdwardsPoint> {
    let point = decode(data)?;
    if point.is_identity() || !point.is_torsion_free() {
        return Err(Invalid);
    }
    Ok(point)
}

pub fn encode(point: &EdwardsPoint) -> [u8; 32] {
    point.compress().to_bytes()
}

fn ciphertext_count(packed: &[u8]) -> Result<usize> {
    if !packed.len().is_multiple_of(CIPHERTEXT_SIZE) {
        return Err(Invalid);
    }
    Ok(packed.len() / CIPHERTEXT_SIZE)
}

/// Length a whole number of ciphertexts and every point canonically encoded; no
/// decompression (curve membership is checked where points are decoded to be added).
pub fn check_encodings(packed: &[u8]) -> Result<()> {
    ciphertext_count(packed)?;
    let all_canonical = packed.par_chunks(POINT_SIZE * PARALLEL_CHUNK).all(|block| {
        block
            .chunks_exact(POINT_SIZE)
            .all(|p| point_bytes(p).is_ok_and(is_canonical))
    });
    if all_canonical {
        Ok(())
    } else {
        Err(Invalid)
    }
}

fn decode_ciphertext(ct: &[u8]) -> Result<[EdwardsPoint; 2]> {
    if ct.len() != CIPHERTEXT_SIZE {
        return Err(Invalid);
    }
    Ok([decode(&ct[..POINT_SIZE])?, decode(&ct[POINT_SIZE..])?])
}

fn encode_ciphertext(c1: &EdwardsPoint, c2: &EdwardsPoint) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&encode(c1));
    out[32..].copy_from_slice(&encode(c2));
    out
}

// --------------------------------------------------------------------------------- scalars

/// A scalar given as 32 little-endian bytes, fully reduced mod l (callers reduce).
pub fn scalar(data: &[u8]) -> Result<Scalar> {
    let bytes: [u8; 32] = data.try_into().map_err(|_| Invalid)?;
    Option::from(Scalar::from_canonical_bytes(bytes)).ok_or(Invalid)
}

fn nonzero_scalar(data: &[u8]) -> Result<Scalar> {
    let s = scalar(data)?;
    if s == Scalar::ZERO {
        return Err(Invalid);
    }
    Ok(s)
}

/// A uniform non-zero scalar from the operating system's CSPRNG.
pub fn random_scalar() -> Result<Scalar> {
    loop {
        let mut wide = [0u8; WIDE_SCALAR_SIZE];
        getrandom::fill(&mut wide).map_err(|_| Invalid)?;
        let s = Scalar::from_bytes_mod_order_wide(&wide);
        if s != Scalar::ZERO {
            return Ok(s);
        }
    }
}

/// Randomness for an encryption: the caller's (tests and known-answer vectors only), or fresh.
fn randomness(given: Option<&[u8]>) -> Result<Scalar> {
    match given {
        Some(bytes) => nonzero_scalar(bytes),
        None => random_scalar(),
    }
}

// ------------------------------------------------------------------------------ operations

/// pk = sk*B for a non-zero secret scalar.
pub fn public_key(secret: &[u8]) -> Result<[u8; 32]> {
    Ok(encode(&EdwardsPoint::mul_base(&nonzero_scalar(secret)?)))
}

/// Whether a received public key is acceptable (canonical, prime order, not the identity).
pub fn check_public_key(data: &[u8]) -> Result<()> {
    decode_prime_order(data).map(|_| ())
}

/// Enc(value; r) = (r*B, value*B + r*pk) under a public key; `value` is a scalar (m mod l).
pub fn encrypt(
    public_key: &[u8],
    value: &[u8],
    given_randomness: Option<&[u8]>,
) -> Result<[u8; 64]> {
    let pk = decode_prime_order(public_key)?;
    let m = scalar(value)?;
    let r = randomness(given_randomness)?;
    let c1 = EdwardsPoint::mul_base(&r);
    let c2 = EdwardsPoint::mul_base(&m) + pk * r;
    Ok(encode_ciphertext(&c1, &c2))
}

/// ciphertext + Enc(0; r): the same plaintext in bytes unlinkable to the input's.
pub fn rerandomize(
    public_key: &[u8],
    ciphertext: &[u8],
    given_randomness: Option<&[u8]>,
) -> Result<[u8; 64]> {
    let pk = decode_prime_order(public_key)?;
    let [c1, c2] = decode_ciphertext(ciphertext)?;
    let r = randomness(given_randomness)?;
    Ok(encode_ciphertext(
        &(c1 + EdwardsPoint::mul_base(&r)),
        &(c2 + pk * r),
    ))
}

/// The key holder's encryption of one 0/1 value as points: (r*B, (d + r*sk)*B), two
/// fixed-base multiplications, byte-identical to [`encrypt`] with the same r once
/// compressed. `None` when r or d + r*sk is zero (probability 2^-251 for a random r): an
/// identity half that every receiver rejects.
fn encrypt_indicator(sk: &Scalar, bit: u8, r: &Scalar) -> Option<[EdwardsPoint; 2]> {
    let s = Scalar::from(u64::from(bit)) + r * sk;
    if *r == Scalar::ZERO || s == Scalar::ZERO {
        return None;
    }
    Some([EdwardsPoint::mul_base(r), EdwardsPoint::mul_base(&s)])
}

/// Enc(d) for each 0/1 byte of `bits`, packed, on every core. Randomness is 64 bytes per
/// element reduced mod l: drawn from the OS per element, or taken from `given_randomness`
/// (len(bits) * 64 bytes; tests and known-answer vectors only). Points are compressed a
/// chunk at a time with one field inversion (dalek's `compress_batch_alloc`).
pub fn encrypt_indicators(
    secret: &[u8],
    bits: &[u8],
    given_randomness: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let sk = nonzero_scalar(secret)?;
    if bits.iter().any(|&b| b > 1) {
        return Err(Invalid);
    }
    if given_randomness.is_some_and(|pool| pool.len() != bits.len() * WIDE_SCALAR_SIZE) {
        return Err(Invalid);
    }
    let mut out = vec![0u8; bits.len() * CIPHERTEXT_SIZE];
    out.par_chunks_mut(CIPHERTEXT_SIZE * PARALLEL_CHUNK)
        .zip(bits.par_chunks(PARALLEL_CHUNK))
        .enumerate()
        .try_for_each(|(chunk, (dst, chunk_bits))| -> Result<()> {
            let first = chunk * PARALLEL_CHUNK * WIDE_SCALAR_SIZE;
            let size = chunk_bits.len() * WIDE_SCALAR_SIZE;
            let mut pool = vec![0u8; size];
            match given_randomness {
                Some(given) => pool.copy_from_slice(given.get(first..first + size).ok_or(Invalid)?),
                None => getrandom::fill(&mut pool).map_err(|_| Invalid)?,
            }
            let mut points = Vec::with_capacity(2 * chunk_bits.len());
            for (wide, &bit) in pool.chunks_exact(WIDE_SCALAR_SIZE).zip(chunk_bits) {
                let wide: &[u8; 64] = wide.try_into().map_err(|_| Invalid)?;
                let mut encrypted =
                    encrypt_indicator(&sk, bit, &Scalar::from_bytes_mod_order_wide(wide));
                while encrypted.is_none() {
                    if given_randomness.is_some() {
                        return Err(Invalid);
                    }
                    encrypted = encrypt_indicator(&sk, bit, &random_scalar()?);
                }
                points.extend(encrypted.ok_or(Invalid)?);
            }
            for (point, encoded) in dst
                .chunks_exact_mut(POINT_SIZE)
                .zip(EdwardsPoint::compress_batch_alloc(&points))
            {
                point.copy_from_slice(encoded.as_bytes());
            }
            Ok(())
        })?;
    Ok(out)
}

/// Enc(x) + Enc(y) = Enc(x + y): component-wise point addition of two decodable ciphertexts.
pub fn add(a: &[u8], b: &[u8]) -> Result<[u8; 64]> {
    let [a1, a2] = decode_ciphertext(a)?;
    let [b1, b2] = decode_ciphertext(b)?;
    Ok(encode_ciphertext(&(a1 + b1), &(a2 + b2)))
}

/// Both points mapped onto the prime-order subgroup, plaintext unchanged: Q = P + T becomes
/// [8^-1 mod l]([8]Q) = P. Three doublings kill any torsion T; the scalar undoes the 8 on P.
pub fn clear_torsion(ciphertext: &[u8]) -> Result<[u8; 64]> {
    static INVERSE_OF_EIGHT: LazyLock<Scalar> = LazyLock::new(|| Scalar::from(8u64).invert());
    let [c1, c2] = decode_ciphertext(ciphertext)?;
    let project = |q: EdwardsPoint| q.mul_by_cofactor() * *INVERSE_OF_EIGHT;
    Ok(encode_ciphertext(&project(c1), &project(c2)))
}

/// The plaintext m with |m| <= bound of a ciphertext under sk, or Invalid (never a wrong m).
/// Both points must be canonical, of prime order and not the identity.
pub fn decrypt(secret: &[u8], ciphertext: &[u8], bound: u64) -> Result<i64> {
    let sk = nonzero_scalar(secret)?;
    if ciphertext.len() != CIPHERTEXT_SIZE || bound > bsgs::MAX_BOUND {
        return Err(Invalid);
    }
    let c1 = decode_prime_order(&ciphertext[..POINT_SIZE])?;
    let c2 = decode_prime_order(&ciphertext[POINT_SIZE..])?;
    let message = c2 - c1 * sk;
    bsgs::discrete_log(&message, bound)
}

/// The identity ciphertext (0*B, 0*B): the sum over no records.
pub fn zero_ciphertext() -> [u8; 64] {
    let identity = EdwardsPoint::identity();
    encode_ciphertext(&identity, &identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};

    fn p_minus(k: u8) -> [u8; 32] {
        let mut b = [0xffu8; 32];
        b[0] = 0xed - k;
        b[31] = 0x7f;
        b
    }

    fn le(v: u64) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&v.to_le_bytes());
        b
    }

    /// A small deterministic generator for test inputs (not for keys).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn bytes32(&mut self) -> [u8; 32] {
            let mut b = [0u8; 32];
            for chunk in b.chunks_mut(4) {
                chunk.copy_from_slice(&(self.next() as u32).to_le_bytes());
            }
            b
        }
    }

    fn canonical_by_round_trip(bytes: &[u8; 32]) -> Option<bool> {
        CompressedEdwardsY(*bytes)
            .decompress()
            .map(|p| p.compress().to_bytes() == *bytes)
    }

    #[test]
    fn byte_check_equals_round_trip_on_edge_and_random_encodings() {
        let mut cases: Vec<[u8; 32]> = Vec::new();
        for k in 0..=20u8 {
            cases.push(p_minus(k)); // p - k, and p + j below via wrapping
        }
        for j in 0..19u64 {
            let mut b = p_minus(0);
            b[0] = 0xed + j as u8; // p + j
            cases.push(b);
        }
        for v in 0..64u64 {
            cases.push(le(v));
        }
        let mut rng = Lcg(7);
        for _ in 0..4000 {
            cases.push(rng.bytes32());
        }
        for t in EIGHT_TORSION.iter() {
            cases.push(t.compress().to_bytes());
        }
        let mut checked = 0;
        for base in cases {
            for sign in [0u8, 0x80] {
                let mut b = base;
                b[31] = (b[31] & 0x7f) | sign;
                if let Some(round_trip) = canonical_by_round_trip(&b) {
                    assert_eq!(is_canonical(&b), round_trip, "{:02x?}", b);
                    assert_eq!(decode(&b).is_ok(), round_trip);
                    checked += 1;
                } else {
                    assert!(decode(&b).is_err());
                }
            }
        }
        assert!(checked > 2000);
    }

    #[test]
    fn negative_zero_and_large_y_are_refused() {
        let mut one_signed = le(1);
        one_signed[31] |= 0x80;
        let mut minus_one_signed = p_minus(1);
        minus_one_signed[31] |= 0x80;
        let mut p_plus_one = p_minus(0);
        p_plus_one[0] = 0xee;
        for bad in [one_signed, minus_one_signed, p_plus_one] {
            assert!(
                CompressedEdwardsY(bad).decompress().is_some(),
                "dalek accepts it"
            );
            assert_eq!(decode(&bad), Err(Invalid));
            assert_eq!(check_encodings(&[bad, le(1)].concat()), Err(Invalid));
        }
    }

    #[test]
    fn prime_order_decoding_refuses_torsion_and_identity() {
        let b = ED25519_BASEPOINT_POINT;
        assert!(decode_prime_order(&encode(&(b * Scalar::from(7u64)))).is_ok());
        for t in EIGHT_TORSION.iter() {
            assert!(decode_prime_order(&encode(t)).is_err());
            if !t.is_identity() {
                assert!(decode_prime_order(&encode(&(b + t))).is_err());
                assert!(decode(&encode(&(b + t))).is_ok());
            }
        }
        assert!(decode_prime_order(&[0u8; 31]).is_err());
        assert!(decode_prime_order(&[0u8; 33]).is_err());
    }

    #[test]
    fn homomorphism_and_decryption() {
        let sk = Scalar::from(123456789u64).to_bytes();
        let pk = public_key(&sk).unwrap();
        let enc = |m: i64| {
            let s = if m < 0 {
                -Scalar::from(m.unsigned_abs())
            } else {
                Scalar::from(m as u64)
            };
            encrypt(&pk, &s.to_bytes(), None).unwrap()
        };
        let total = add(&enc(600), &enc(-1100)).unwrap();
        assert_eq!(decrypt(&sk, &total, 500), Ok(-500));
        assert_eq!(decrypt(&sk, &total, 499), Err(Invalid));
        let fresh = rerandomize(&pk, &total, None).unwrap();
        assert_ne!(fresh, total);
        assert_eq!(decrypt(&sk, &fresh, 1000), Ok(-500));
        assert_eq!(decrypt(&sk, &enc(0), 0), Ok(0));
    }

    #[test]
    fn indicators_match_public_encryption_with_the_same_randomness() {
        let sk_scalar = Scalar::from(987654321u64);
        let sk = sk_scalar.to_bytes();
        let pk = public_key(&sk).unwrap();
        let bits = [0u8, 1, 1, 0, 1];
        let mut rng = Lcg(3);
        let pool: Vec<u8> = (0..bits.len() * 2).flat_map(|_| rng.bytes32()).collect();
        let packed = encrypt_indicators(&sk, &bits, Some(&pool)).unwrap();
        for (i, &bit) in bits.iter().enumerate() {
            let wide: [u8; 64] = pool[i * 64..(i + 1) * 64].try_into().unwrap();
            let r = Scalar::from_bytes_mod_order_wide(&wide);
            let expected = encrypt(
                &pk,
                &Scalar::from(u64::from(bit)).to_bytes(),
                Some(&r.to_bytes()),
            )
            .unwrap();
            assert_eq!(&packed[i * 64..(i + 1) * 64], &expected);
            assert_eq!(decrypt(&sk, &expected, 1), Ok(i64::from(bit)));
        }
        let fresh = encrypt_indicators(&sk, &bits, None).unwrap();
        assert_ne!(fresh, packed);
        assert_eq!(encrypt_indicators(&sk, &[2], None), Err(Invalid));
        assert_eq!(
            encrypt_indicators(&sk, &bits, Some(&pool[1..])),
            Err(Invalid)
        );
        assert_eq!(encrypt_indicators(&sk, &[], None), Ok(Vec::new()));
    }

    #[test]
    fn torsion_is_cleared() {
        let sk = Scalar::from(5u64).to_bytes();
        let pk = public_key(&sk).unwrap();
        let ct = encrypt(&pk, &Scalar::from(9u64).to_bytes(), None).unwrap();
        let [c1, c2] = decode_ciphertext(&ct).unwrap();
        let t = EIGHT_TORSION[3];
        let salted = encode_ciphertext(&(c1 + t), &(c2 + t));
        assert_eq!(decrypt(&sk, &salted, 100), Err(Invalid));
        let cleared = clear_torsion(&salted).unwrap();
        assert_eq!(cleared, ct);
        assert_eq!(
            clear_torsion(&encode_ciphertext(&t, &t)).unwrap(),
            zero_ciphertext()
        );
    }

    #[test]
    fn zero_secret_and_zero_randomness_are_refused() {
        assert_eq!(public_key(&[0u8; 32]), Err(Invalid));
        let pk = public_key(&le(3)).unwrap();
        assert_eq!(encrypt(&pk, &le(1), Some(&[0u8; 32])), Err(Invalid));
        // l itself is not a reduced scalar
        let l = (Scalar::ZERO - Scalar::ONE).to_bytes();
        let mut l_bytes = l;
        l_bytes[0] += 1;
        assert_eq!(encrypt(&pk, &l_bytes, None), Err(Invalid));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Lcg(11);
        let sk = le(77);
        for len in [0usize, 1, 31, 32, 33, 63, 64, 65, 128] {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let _ = decode(&data);
                let _ = check_encodings(&data);
                let _ = check_public_key(&data);
                let _ = clear_torsion(&data);
                let _ = add(&data, &data);
                let _ = decrypt(&sk, &data, 10);
                let _ = encrypt(&data, &data, None);
                let _ = rerandomize(&data, &data, Some(&data));
                let _ = encrypt_indicators(&data, &data, None);
            }
        }
    }
}
