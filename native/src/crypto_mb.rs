//! Intel crypto_mb's multi-buffer X25519 (`mbx_x25519_mb8`), loaded at run time.
//!
//! `libcrypto_mb.so` comes from the `ipp-crypto` wheel and its Intel runtime libraries from
//! `intel-cmplr-lib-rt`; both install into `<prefix>/lib`, which carries no RUNPATH, so the
//! runtime libraries are opened first by absolute path and the loader then finds them by
//! soname. The library is used only when `mbx_is_crypto_mb_applicable(0)` says this CPU has
//! AVX-512 IFMA and the other features it was compiled for. The FFI invariants are listed
//! in native/SAFETY.md; each `unsafe` block below names the ones it relies on.

use std::path::Path;
use std::sync::OnceLock;

use libloading::Library;

use crate::x25519::{self, Invalid, ELEMENT};

/// `mbx_status mbx_x25519_mb8(int8u* const pa_shared_key[8], const int8u* const
/// pa_private_key[8], const int8u* const pa_public_key[8])` (crypto_mb/x25519.h).
type X25519Mb8 = unsafe extern "C" fn(*const *mut u8, *const *const u8, *const *const u8) -> u32;
/// `int mbx_is_crypto_mb_applicable(int64u cpu_features)`; 0 asks it to read CPUID.
type Applicable = unsafe extern "C" fn(u64) -> i32;

/// Runtime libraries libcrypto_mb.so needs (its DT_NEEDED entries from the Intel runtime),
/// in dependency order.
const RUNTIME: [&str; 4] = ["libintlc.so.5", "libimf.so", "libsvml.so", "libirng.so"];
const LIBRARY: [&str; 2] = ["libcrypto_mb.so.13", "libcrypto_mb.so"];

pub struct CryptoMb {
    x25519_mb8: X25519Mb8,
    /// Keeps the libraries mapped for as long as `x25519_mb8` may be called (forever: the
    /// value lives in a static and is never dropped).
    _libraries: Vec<Library>,
}

static LOADED: OnceLock<Option<CryptoMb>> = OnceLock::new();
static STATUS: OnceLock<String> = OnceLock::new();

/// The loaded library, if `load` found and accepted one.
pub fn get() -> Option<&'static CryptoMb> {
    LOADED.get().and_then(Option::as_ref)
}

/// Why the active X25519 path is what it is, in one line.
pub fn status() -> String {
    STATUS
        .get()
        .cloned()
        .unwrap_or_else(|| "crypto_mb was not looked for".to_owned())
}

/// Look for crypto_mb in `directory` once per process; later calls change nothing.
pub fn load(directory: &Path) {
    LOADED.get_or_init(|| {
        let (found, why) = match std::env::var("CLEANROOM_X25519").as_deref() {
            Ok("portable") => (None, "CLEANROOM_X25519=portable".to_owned()),
            _ => match open(directory) {
                Ok(library) => (
                    Some(library),
                    format!(
                        "Intel crypto_mb mbx_x25519_mb8 (AVX-512 IFMA) from {}",
                        directory.display()
                    ),
                ),
                Err(why) => (None, why),
            },
        };
        let _ = STATUS.set(why);
        found
    });
}

fn open(directory: &Path) -> Result<CryptoMb, String> {
    if !cfg!(all(
        target_arch = "x86_64",
        any(target_os = "linux", target_os = "windows")
    )) {
        return Err("Intel crypto_mb wheels exist for x86-64 Linux and Windows only".to_owned());
    }
    let library_path = LIBRARY
        .iter()
        .map(|name| directory.join(name))
        .find(|path| path.exists())
        .ok_or_else(|| {
            format!(
                "libcrypto_mb.so not found in {} (pip install ipp-crypto intel-cmplr-lib-rt)",
                directory.display()
            )
        })?;
    let mut libraries = Vec::new();
    for name in RUNTIME {
        let path = directory.join(name);
        // SAFETY: (SAFETY.md 1) the Intel runtime libraries run only ELF initialisers that
        // set up their own state; opening them has no other effect on this process.
        let library = unsafe { Library::new(&path) }.map_err(|e| {
            format!(
                "cannot load {}: {e} (pip install intel-cmplr-lib-rt)",
                path.display()
            )
        })?;
        libraries.push(library);
    }
    // SAFETY: (SAFETY.md 1) as above; its dependencies are now resolvable by soname.
    let library = unsafe { Library::new(&library_path) }
        .map_err(|e| format!("cannot load {}: {e}", library_path.display()))?;
    // SAFETY: (SAFETY.md 2) the symbols have these C signatures in crypto_mb's public headers
    // (cpu_features.h, x25519.h); the function pointers are used only while `library` lives.
    let (applicable, x25519_mb8) = unsafe {
        let applicable: Applicable = *library
            .get::<Applicable>(b"mbx_is_crypto_mb_applicable\0")
            .map_err(|e| format!("libcrypto_mb.so has no mbx_is_crypto_mb_applicable: {e}"))?;
        let x25519_mb8: X25519Mb8 = *library
            .get::<X25519Mb8>(b"mbx_x25519_mb8\0")
            .map_err(|e| format!("libcrypto_mb.so has no mbx_x25519_mb8: {e}"))?;
        (applicable, x25519_mb8)
    };
    // SAFETY: (SAFETY.md 3) takes an integer, reads CPUID, touches no memory of ours.
    if unsafe { applicable(0) } == 0 {
        return Err(
            "this CPU lacks AVX-512 IFMA (mbx_is_crypto_mb_applicable is false)".to_owned(),
        );
    }
    libraries.push(library);
    let loaded = CryptoMb {
        x25519_mb8,
        _libraries: libraries,
    };
    loaded.self_test()?;
    Ok(loaded)
}

/// RFC 7748 section 5.2's first vector (its u is canonical; the second's has the top bit
/// set, which cleanroom refuses), computed in all 8 lanes before first use.
const TEST_KEY: [u8; 32] = [
    0xa5, 0x46, 0xe3, 0x6b, 0xf0, 0x52, 0x7c, 0x9d, 0x3b, 0x16, 0x15, 0x4b, 0x82, 0x46, 0x5e, 0xdd,
    0x62, 0x14, 0x4c, 0x0a, 0xc1, 0xfc, 0x5a, 0x18, 0x50, 0x6a, 0x22, 0x44, 0xba, 0x44, 0x9a, 0xc4,
];
const TEST_U: [u8; 32] = [
    0xe6, 0xdb, 0x68, 0x67, 0x58, 0x30, 0x30, 0xdb, 0x35, 0x94, 0xc1, 0xa4, 0x24, 0xb1, 0x5f, 0x7c,
    0x72, 0x66, 0x24, 0xec, 0x26, 0xb3, 0x35, 0x3b, 0x10, 0xa9, 0x03, 0xa6, 0xd0, 0xab, 0x1c, 0x4c,
];
const TEST_OUT: [u8; 32] = [
    0xc3, 0xda, 0x55, 0x37, 0x9d, 0xe9, 0xc6, 0x90, 0x8e, 0x94, 0xea, 0x4d, 0xf2, 0x8d, 0x08, 0x4f,
    0x32, 0xec, 0xcf, 0x03, 0x49, 0x1c, 0x71, 0xf7, 0x54, 0xb4, 0x07, 0x55, 0x77, 0xa2, 0x85, 0x52,
];

impl CryptoMb {
    fn self_test(&self) -> Result<(), String> {
        let input = TEST_U.repeat(8);
        let mut out = vec![0u8; input.len()];
        match self.x25519_into(&TEST_KEY, &input, &mut out) {
            Ok(()) if out.chunks_exact(ELEMENT).all(|lane| lane == TEST_OUT) => Ok(()),
            _ => Err("crypto_mb failed its RFC 7748 self-test; using the portable path".to_owned()),
        }
    }

    /// X25519 of each element of `input` into `out`, with the checks of `x25519.rs`: every
    /// input canonical and not of low order, no output all zeros. Eight lanes per call; a short tail is padded
    /// with a valid element and its results are thrown away.
    pub fn x25519_into(&self, key: &[u8; 32], input: &[u8], out: &mut [u8]) -> Result<(), Invalid> {
        if !input.len().is_multiple_of(ELEMENT) || out.len() != input.len() {
            return Err(Invalid);
        }
        for element in input.chunks_exact(ELEMENT) {
            let u: &[u8; 32] = element.try_into().map_err(|_| Invalid)?;
            if !x25519::is_canonical(u) || x25519::LOW_ORDER.contains(u) {
                return Err(Invalid);
            }
        }
        let key = clamp(key);
        let keys = [key.as_ptr(); 8];
        let mut scratch = [[0u8; ELEMENT]; 8];
        for (src, dst) in input.chunks(8 * ELEMENT).zip(out.chunks_mut(8 * ELEMENT)) {
            let lanes = src.len() / ELEMENT;
            let mut results = [[0u8; ELEMENT]; 8];
            let mut inputs = [TEST_U.as_ptr(); 8];
            for (lane, element) in src.chunks_exact(ELEMENT).enumerate() {
                inputs[lane] = element.as_ptr();
            }
            let outputs: [*mut u8; 8] = std::array::from_fn(|lane| {
                if lane < lanes {
                    results[lane].as_mut_ptr()
                } else {
                    scratch[lane].as_mut_ptr()
                }
            });
            // SAFETY: (SAFETY.md 4) each of the 8 pointers in each array points to 32 bytes
            // that stay valid for the call: outputs into `results`/`scratch` (distinct,
            // writable, not aliased by any input), keys into `key`, inputs into `input` or
            // TEST_U. The function reads 32 bytes per input and key pointer, writes 32 per
            // output pointer, keeps no pointer after returning and is reentrant (no global
            // state), so rayon threads may call it concurrently.
            let status =
                unsafe { (self.x25519_mb8)(outputs.as_ptr(), keys.as_ptr(), inputs.as_ptr()) };
            if status != 0 {
                return Err(Invalid);
            }
            for (lane, chunk) in dst.chunks_exact_mut(ELEMENT).enumerate() {
                if x25519::is_zero(&results[lane]) {
                    return Err(Invalid);
                }
                chunk.copy_from_slice(&results[lane]);
            }
        }
        Ok(())
    }
}

/// RFC 7748 section 5's decodeScalar25519; idempotent, so crypto_mb's own clamping (if any)
/// gives the same scalar.
fn clamp(key: &[u8; 32]) -> [u8; 32] {
    let mut k = *key;
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs where CLEANROOM_CRYPTO_MB_DIR names a directory holding the Intel wheels' libraries.
    #[test]
    fn crypto_mb_matches_portable_when_present() {
        let Ok(directory) = std::env::var("CLEANROOM_CRYPTO_MB_DIR") else {
            return;
        };
        let loaded = match open(Path::new(&directory)) {
            Ok(loaded) => loaded,
            Err(why) => panic!("{why}"),
        };
        let key = [0x5au8; 32];
        let input: Vec<u8> = (0..13u8)
            .flat_map(|i| crate::h2c::hash_to_curve(&[i], b"test"))
            .collect();
        let mut fast = vec![0u8; input.len()];
        let mut portable = vec![0u8; input.len()];
        loaded.x25519_into(&key, &input, &mut fast).unwrap();
        crate::x25519::x25519_into(&key, &input, &mut portable).unwrap();
        assert_eq!(fast, portable);
    }
}
