//! The PyO3 layer of the ElGamal kernels, on the crate's (lib.rs): batches go through
//! `guarded` (GIL released, the caller's rayon pool); one-element calls through `single`,
//! which skips the pool hand-off that would cost more than the work. Every failure, and a
//! panic all the same, is the one opaque `cleanroom.errors.CryptoError`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::python::{guarded, CryptoError};

use super::{bsgs, sum, Result};

/// Run a one-element kernel with the GIL released on the calling thread.
fn single<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(work))) {
        Ok(Ok(value)) => Ok(value),
        _ => Err(CryptoError::new_err(())),
    }
}

fn bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

/// sk*B for a 32-byte reduced non-zero secret scalar.
#[pyfunction]
fn elgamal_public_key<'py>(py: Python<'py>, secret: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let pk = single(py, || super::public_key(secret))?;
    Ok(bytes(py, &pk))
}

/// CryptoError unless `data` is a canonical encoding of a prime-order point other than O.
#[pyfunction]
fn elgamal_check_public_key(py: Python<'_>, data: &[u8]) -> PyResult<()> {
    single(py, || super::check_public_key(data))
}

/// Enc(value; r) under `public_key`; `value` and `randomness` are 32-byte reduced scalars,
/// randomness drawn from the OS when None (a given one is for known-answer tests only).
#[pyfunction]
#[pyo3(signature = (public_key, value, randomness = None))]
fn elgamal_encrypt<'py>(
    py: Python<'py>,
    public_key: &[u8],
    value: &[u8],
    randomness: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ct = single(py, || super::encrypt(public_key, value, randomness))?;
    Ok(bytes(py, &ct))
}

/// ciphertext + Enc(0; r), r as for `elgamal_encrypt`.
#[pyfunction]
#[pyo3(signature = (public_key, ciphertext, randomness = None))]
fn elgamal_rerandomize<'py>(
    py: Python<'py>,
    public_key: &[u8],
    ciphertext: &[u8],
    randomness: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ct = single(py, || {
        super::rerandomize(public_key, ciphertext, randomness)
    })?;
    Ok(bytes(py, &ct))
}

/// Enc(d) for each 0/1 byte of `bits`, packed; `randomness` (64 bytes per bit) for tests only.
#[pyfunction]
#[pyo3(signature = (secret, bits, randomness = None))]
fn elgamal_encrypt_indicators<'py>(
    py: Python<'py>,
    secret: &[u8],
    bits: &[u8],
    randomness: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let packed = guarded(py, || super::encrypt_indicators(secret, bits, randomness))?;
    Ok(bytes(py, &packed))
}

/// Component-wise sum of two ciphertexts.
#[pyfunction]
fn elgamal_add<'py>(py: Python<'py>, a: &[u8], b: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let ct = single(py, || super::add(a, b))?;
    Ok(bytes(py, &ct))
}

/// CryptoError unless `packed` is whole ciphertexts of canonically encoded points.
#[pyfunction]
fn elgamal_check_encodings(py: Python<'_>, packed: &[u8]) -> PyResult<()> {
    guarded(py, || super::check_encodings(packed))
}

/// Both points of a ciphertext projected onto the prime-order subgroup.
#[pyfunction]
fn elgamal_clear_torsion<'py>(py: Python<'py>, ciphertext: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let ct = single(py, || super::clear_torsion(ciphertext))?;
    Ok(bytes(py, &ct))
}

/// Per mask (k rows of n bytes 0/1 in `masks`), the sum of the ciphertexts it selects:
/// k ciphertexts packed.
#[pyfunction]
fn elgamal_sum_by_mask<'py>(
    py: Python<'py>,
    packed: &[u8],
    masks: &[u8],
    k: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let sums = guarded(py, || sum::sum_by_mask(packed, masks, k))?;
    Ok(bytes(py, &sums))
}

/// The plaintext m, |m| <= bound, of a ciphertext under `secret`, or CryptoError.
#[pyfunction]
fn elgamal_decrypt(py: Python<'_>, secret: &[u8], ciphertext: &[u8], bound: u64) -> PyResult<i64> {
    guarded(py, || super::decrypt(secret, ciphertext, bound))
}

/// T, the baby-step table size decrypt uses for `bound` (giant steps are 2T + 1).
#[pyfunction]
fn elgamal_table_size(bound: u64) -> u64 {
    bsgs::table_size(bound)
}

/// Drop the cached baby-step table (tests, or to free its memory).
#[pyfunction]
fn elgamal_clear_table() {
    bsgs::TABLE.clear();
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(elgamal_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_check_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_rerandomize, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_encrypt_indicators, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_add, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_check_encodings, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_clear_torsion, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_sum_by_mask, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_table_size, m)?)?;
    m.add_function(wrap_pyfunction!(elgamal_clear_table, m)?)?;
    Ok(())
}
