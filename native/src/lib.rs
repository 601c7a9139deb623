//! cleanroom's per-record cryptography, as the private Python module `cleanroom._native`.
//!
//! The kernels are plain Rust modules, tested with `cargo test`. This file is the one thin
//! PyO3 layer: it borrows packed `bytes`, releases the GIL (`Python::detach`), runs the batch
//! on the caller's rayon pool (`threads.rs`) and turns every failure of a received element
//! into the one opaque `cleanroom.errors.CryptoError`. Kernels never panic on input, and a
//! panic all the same is caught here and reported as that error, never unwound into Python.

pub mod crypto_mb;
pub mod h2c;
pub mod threads;
pub mod x25519;

/// The one failure a kernel reports about received data (whatever check failed).
pub use x25519::Invalid;

#[cfg(feature = "python")]
pub(crate) mod python {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    use pyo3::exceptions::PyValueError;

    use crate::{crypto_mb, h2c, threads, x25519};

    pyo3::import_exception!(cleanroom.errors, CryptoError);

    /// Elements per rayon task: big enough to amortise the scheduling, a multiple of 8 lanes.
    pub(crate) const TASK: usize = 512;

    /// Run a kernel with the GIL released; an `Err` or a panic becomes CryptoError.
    pub(crate) fn guarded<T: Send>(
        py: Python<'_>,
        work: impl FnOnce() -> Result<T, x25519::Invalid> + Send,
    ) -> PyResult<T> {
        let threads = threads::current();
        let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(|| threads::run(threads, work))));
        match outcome {
            Ok(Ok(value)) => Ok(value),
            _ => Err(CryptoError::new_err(())),
        }
    }

    fn key32(key: &[u8]) -> PyResult<[u8; 32]> {
        key.try_into()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("an X25519 key is 32 bytes"))
    }

    /// X25519(key, u) for each 32-byte u of `packed`, validated; packed in the same order.
    #[pyfunction]
    #[pyo3(signature = (key, packed, portable = false))]
    fn x25519_batch<'py>(
        py: Python<'py>,
        key: &[u8],
        packed: &[u8],
        portable: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let key = key32(key)?;
        if packed.len() % x25519::ELEMENT != 0 {
            return Err(CryptoError::new_err(()));
        }
        let mut out = vec![0u8; packed.len()];
        guarded(py, || {
            use rayon::prelude::*;
            let span = TASK * x25519::ELEMENT;
            out.par_chunks_mut(span)
                .zip(packed.par_chunks(span))
                .try_for_each(|(dst, src)| match (portable, crypto_mb::get()) {
                    (false, Some(mb)) => mb.x25519_into(&key, src, dst),
                    _ => x25519::x25519_into(&key, src, dst),
                })
        })?;
        Ok(PyBytes::new(py, &out))
    }

    fn dst_or_error(dst: &[u8]) -> PyResult<Vec<u8>> {
        h2c::effective_dst(dst).ok_or_else(|| {
            PyValueError::new_err("RFC 9380 requires a non-empty domain separation tag")
        })
    }

    /// Borrow each item of a sequence of `bytes` (immutable, so readable without the GIL).
    fn borrowed_messages<'py>(messages: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        if messages.is_instance_of::<PyBytes>()
            || messages.is_instance_of::<pyo3::types::PyString>()
        {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "hash_to_curve_batch takes a sequence of bytes, not one bytes or str",
            ));
        }
        let mut held = Vec::with_capacity(messages.len().unwrap_or(0));
        for item in messages.try_iter()? {
            held.push(item?.cast_into::<PyBytes>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(
                    "hash_to_curve_batch takes a sequence of bytes",
                )
            })?);
        }
        Ok(held)
    }

    /// RFC 9380 curve25519_XMD:SHA-512_ELL2_RO_ of each message: packed 32-byte u-coordinates.
    #[pyfunction]
    fn hash_to_curve_batch<'py>(
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        dst: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let dst = dst_or_error(dst)?;
        let held = borrowed_messages(messages)?;
        let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
        let mut out = vec![0u8; slices.len() * h2c::ELEMENT];
        guarded(py, || {
            use rayon::prelude::*;
            out.par_chunks_mut(TASK * h2c::ELEMENT)
                .zip(slices.par_chunks(TASK))
                .for_each(|(dst_slots, msgs)| h2c::hash_to_curve_into(msgs, &dst, dst_slots));
            Ok(())
        })?;
        Ok(PyBytes::new(py, &out))
    }

    /// RFC 9380 edwards25519_XMD:SHA-512_ELL2_RO_ of one message: the compressed point.
    #[pyfunction]
    fn hash_to_curve_edwards25519<'py>(
        py: Python<'py>,
        msg: &[u8],
        dst: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let dst = dst_or_error(dst)?;
        let point = guarded(py, || {
            Ok(h2c::hash_to_edwards(msg, &dst).compress().to_bytes())
        })?;
        Ok(PyBytes::new(py, &point))
    }

    /// Load Intel crypto_mb from `directory` if this CPU can run it; returns (path, reason).
    #[pyfunction]
    fn load_crypto_mb(directory: &str) -> (&'static str, String) {
        crypto_mb::load(std::path::Path::new(directory));
        x25519_path()
    }

    /// Which X25519 implementation batches use: ("crypto_mb" | "portable", why).
    #[pyfunction]
    fn x25519_path() -> (&'static str, String) {
        match crypto_mb::get() {
            Some(_) => ("crypto_mb", crypto_mb::status()),
            None => ("portable", crypto_mb::status()),
        }
    }

    /// Bind the calling thread's batches to `threads` threads (0: every core); returns the
    /// previous binding.
    #[pyfunction]
    fn bind_threads(threads: usize) -> usize {
        threads::bind(threads)
    }

    /// The thread count batches started from this thread use.
    #[pyfunction]
    fn thread_count() -> usize {
        threads::current()
    }

    #[pymodule]
    fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add_function(wrap_pyfunction!(x25519_batch, m)?)?;
        m.add_function(wrap_pyfunction!(hash_to_curve_batch, m)?)?;
        m.add_function(wrap_pyfunction!(hash_to_curve_edwards25519, m)?)?;
        m.add_function(wrap_pyfunction!(load_crypto_mb, m)?)?;
        m.add_function(wrap_pyfunction!(x25519_path, m)?)?;
        m.add_function(wrap_pyfunction!(bind_threads, m)?)?;
        m.add_function(wrap_pyfunction!(thread_count, m)?)?;
        // ---- ElGamal (the `elgamal` branch): add `pub mod elgamal;` at the top of this file
        // and register its pyfunctions here (they may use `guarded`, `TASK` and CryptoError
        // above), e.g. `crate::elgamal::register(m)?;`
        // ---- end ElGamal
        Ok(())
    }
}
