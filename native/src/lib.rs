//! cleanroom's per-record cryptography, as the private Python module `cleanroom._native`.
//!
//! The kernels are plain Rust modules, tested with `cargo test`. This file is the one thin
//! PyO3 layer: it borrows packed `bytes`, releases the GIL (`Python::detach`), runs the batch
//! on the caller's rayon pool (`threads.rs`) and turns every failure of a received element
//! into the one opaque `cleanroom.errors.CryptoError`. Kernels never panic on input, and a
//! panic all the same is caught here and reported as that error, never unwound into Python.

pub mod crypto_mb;
pub mod elgamal;
pub mod h2c;
pub mod lookup;
pub mod sha256;
pub mod shuffle;
pub mod sketch;
pub mod threads;
pub mod x25519;

/// The one failure a kernel reports about received data (whatever check failed).
pub use x25519::Invalid;

#[cfg(feature = "python")]
pub(crate) mod python {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyString};

    use crate::{crypto_mb, h2c, lookup, sha256, shuffle, sketch, threads, x25519};

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

    /// A sketch's bucket counts, as little-endian u32s: `records` records in rayon tasks of
    /// `16 * TASK`, each task's counts from `add` and summed.
    fn sketch_counts<'py>(
        py: Python<'py>,
        records: usize,
        add: impl Fn(std::ops::Range<usize>, &mut [u32]) + Sync + Send,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let counts = guarded(py, || {
            use rayon::prelude::*;
            let starts: Vec<usize> = (0..records).step_by(16 * TASK).collect();
            Ok(starts
                .into_par_iter()
                .fold(
                    || vec![0u32; sketch::BUCKETS],
                    |mut counts, start| {
                        add(start..(start + 16 * TASK).min(records), &mut counts);
                        counts
                    },
                )
                .reduce(
                    || vec![0u32; sketch::BUCKETS],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                        a
                    },
                ))
        })?;
        let packed: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &packed))
    }

    fn key32(key: &[u8]) -> PyResult<[u8; 32]> {
        key.try_into()
            .map_err(|_| PyValueError::new_err("an X25519 key is 32 bytes"))
    }

    /// `work(out, input)` on each span of `TASK` elements of `packed` (32-byte elements, else
    /// CryptoError), in parallel into a buffer of the same length.
    fn element_spans<'py>(
        py: Python<'py>,
        packed: &[u8],
        work: impl Fn(&mut [u8], &[u8]) -> Result<(), x25519::Invalid> + Sync + Send,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if !packed.len().is_multiple_of(x25519::ELEMENT) {
            return Err(CryptoError::new_err(()));
        }
        let mut out = vec![0u8; packed.len()];
        guarded(py, || {
            use rayon::prelude::*;
            let span = TASK * x25519::ELEMENT;
            out.par_chunks_mut(span)
                .zip(packed.par_chunks(span))
                .try_for_each(|(dst, src)| work(dst, src))
        })?;
        Ok(PyBytes::new(py, &out))
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
        element_spans(py, packed, |dst, src| match (portable, crypto_mb::get()) {
            (false, Some(mb)) => mb.x25519_into(&key, src, dst),
            _ => x25519::x25519_into(&key, src, dst),
        })
    }

    /// X25519(k, point) for each 32-byte key k of `keys`, validated; packed in key order.
    #[pyfunction]
    fn x25519_keys<'py>(
        py: Python<'py>,
        keys: &[u8],
        point: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let point: [u8; 32] = point.try_into().map_err(|_| CryptoError::new_err(()))?;
        element_spans(py, keys, |dst, src| {
            x25519::x25519_keys_into(src, &point, dst)
        })
    }

    fn dst_or_error(dst: &[u8]) -> PyResult<Vec<u8>> {
        h2c::effective_dst(dst).ok_or_else(|| {
            PyValueError::new_err("RFC 9380 requires a non-empty domain separation tag")
        })
    }

    /// Borrow each item of a sequence of `bytes` (immutable, so readable without the GIL).
    fn borrowed_messages<'py>(messages: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        if messages.is_instance_of::<PyBytes>() || messages.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "hash_to_curve_batch takes a sequence of bytes, not one bytes or str",
            ));
        }
        let mut held = Vec::with_capacity(messages.len().unwrap_or(0));
        for item in messages.try_iter()? {
            held.push(item?.cast_into::<PyBytes>().map_err(|_| {
                PyTypeError::new_err("hash_to_curve_batch takes a sequence of bytes")
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

    /// RFC 9380 curve25519_XMD:SHA-512_ELL2_RO_ of `prefix || digest` for each 32-byte digest
    /// of `digests`: packed u-coordinates, without a Python `bytes` per message.
    #[pyfunction]
    fn hash_to_curve_prefixed<'py>(
        py: Python<'py>,
        prefix: &[u8],
        digests: &[u8],
        dst: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let dst = dst_or_error(dst)?;
        if !digests.len().is_multiple_of(sha256::DIGEST) {
            return Err(PyValueError::new_err("digests are packed 32-byte values"));
        }
        let mut out = vec![0u8; digests.len() / sha256::DIGEST * h2c::ELEMENT];
        guarded(py, || {
            use rayon::prelude::*;
            out.par_chunks_mut(TASK * h2c::ELEMENT)
                .zip(digests.par_chunks(TASK * sha256::DIGEST))
                .for_each(|(slots, chunk)| {
                    h2c::hash_to_curve_prefixed_into(prefix, chunk, sha256::DIGEST, &dst, slots)
                });
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

    /// SHA-256 of each span `data[offsets[i]..offsets[i + 1]]`, `offsets` packed as
    /// little-endian int64 (Arrow's large-string layout): packed 32-byte digests.
    #[pyfunction]
    fn sha256_spans<'py>(
        py: Python<'py>,
        data: &[u8],
        offsets: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        if !offsets.len().is_multiple_of(8) {
            return Err(CryptoError::new_err(()));
        }
        let offsets: Vec<i64> = offsets
            .chunks_exact(8)
            .map(|o| i64::from_le_bytes(o.try_into().expect("chunks of 8")))
            .collect();
        if !sha256::valid_offsets(&offsets, data.len()) {
            return Err(CryptoError::new_err(()));
        }
        let spans = offsets.len().saturating_sub(1);
        let mut out = vec![0u8; spans * sha256::DIGEST];
        guarded(py, || {
            use rayon::prelude::*;
            // Windows of TASK + 1 offsets overlapping by one: TASK spans per rayon task.
            let starts: Vec<usize> = (0..spans).step_by(TASK).collect();
            out.par_chunks_mut(TASK * sha256::DIGEST)
                .zip(starts)
                .for_each(|(slots, start)| {
                    let end = (start + TASK).min(spans);
                    sha256::sha256_spans_into(data, &offsets[start..=end], slots)
                });
            Ok(())
        })?;
        Ok(PyBytes::new(py, &out))
    }

    /// A uniformly random permutation of 0..n from a CSPRNG seeded by the OS, packed as
    /// little-endian uint64.
    #[pyfunction]
    fn permutation<'py>(py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let order = py
            .detach(|| shuffle::permutation(n))
            .map_err(|_| PyOSError::new_err("the OS provided no randomness"))?;
        let packed: Vec<u8> = order.iter().flat_map(|i| i.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &packed))
    }

    /// The `size`-byte items of `packed` in a uniformly random order (CSPRNG seeded by the OS).
    #[pyfunction]
    fn shuffle_packed<'py>(
        py: Python<'py>,
        packed: &[u8],
        size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if size == 0 || !packed.len().is_multiple_of(size) {
            return Err(CryptoError::new_err(()));
        }
        let out = py
            .detach(|| shuffle::shuffle_packed(packed, size))
            .map_err(|_| PyOSError::new_err("the OS provided no randomness"))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The set-difference sketch: bucket counts (little-endian uint32, sketch::BUCKETS of
    /// them) of the records, record r being `(columns[0][r], columns[1][r], ...)`, each a
    /// digest or None.
    #[pyfunction]
    fn list_sketch<'py>(
        py: Python<'py>,
        columns: &Bound<'py, PyAny>,
        key: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        if key.len() > sketch::MAX_KEY {
            return Err(PyValueError::new_err("a BLAKE2b key is at most 64 bytes"));
        }
        let mut held: Vec<Vec<Option<Bound<'py, PyBytes>>>> = Vec::new();
        for column in columns.try_iter()? {
            let mut digests = Vec::new();
            for item in column?.try_iter()? {
                let item = item?;
                digests.push(if item.is_none() {
                    None
                } else {
                    Some(
                        item.cast_into::<PyBytes>().map_err(|_| {
                            PyTypeError::new_err("a sketch digest is bytes or None")
                        })?,
                    )
                });
            }
            held.push(digests);
        }
        let records = held.first().map_or(0, Vec::len);
        if held.iter().any(|column| column.len() != records) {
            return Err(PyValueError::new_err(
                "every digest column of a sketch has one entry per record",
            ));
        }
        let columns: Vec<Vec<Option<&[u8]>>> = held
            .iter()
            .map(|column| {
                column
                    .iter()
                    .map(|d| d.as_ref().map(|b| b.as_bytes()))
                    .collect()
            })
            .collect();
        sketch_counts(py, records, |range, counts| {
            sketch::count_into(&columns, range, key, counts)
        })
    }

    /// `list_sketch` of packed columns: `digests` holds `keys` columns one after the other,
    /// each `records * 32` bytes, `present` one byte per (key, record) in the same order
    /// (non-zero: the digest is there), `labels` one signed byte per record (a brand's
    /// segment index) or None.
    #[pyfunction]
    #[pyo3(signature = (digests, present, keys, key, labels = None))]
    fn list_sketch_packed<'py>(
        py: Python<'py>,
        digests: &[u8],
        present: &[u8],
        keys: usize,
        key: &[u8],
        labels: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if key.len() > sketch::MAX_KEY {
            return Err(PyValueError::new_err("a BLAKE2b key is at most 64 bytes"));
        }
        let records = present.len().checked_div(keys).unwrap_or(0);
        if keys == 0
            || present.len() != keys * records
            || digests.len() != present.len() * sha256::DIGEST
            || labels.is_some_and(|l| l.len() != records)
        {
            return Err(PyValueError::new_err(
                "a packed sketch has keys * records digests, presence flags, and one label per record",
            ));
        }
        let columns = sketch::Packed {
            digests: digests
                .chunks_exact(records.max(1) * sha256::DIGEST)
                .collect(),
            present: present.chunks_exact(records.max(1)).collect(),
            digest_size: sha256::DIGEST,
            labels,
        };
        sketch_counts(py, records, |range, counts| {
            sketch::count_packed_into(&columns, range, key, counts)
        })
    }

    /// The brand's match table of one match key: truncated elements and their segments.
    #[pyclass(frozen, module = "cleanroom._native")]
    struct MatchTable {
        table: lookup::MatchTable,
    }

    #[pymethods]
    impl MatchTable {
        /// `packed`: items of `size` bytes (1 to 16); `segments`: one int8 per item.
        #[new]
        fn new(py: Python<'_>, packed: &[u8], segments: &[u8], size: usize) -> PyResult<Self> {
            if size == 0 || size > lookup::MAX_SIZE || packed.len() != segments.len() * size {
                return Err(CryptoError::new_err(()));
            }
            let segments: Vec<i8> = segments.iter().map(|&s| s as i8).collect();
            let table = py.detach(|| lookup::MatchTable::new(packed, &segments, size));
            Ok(MatchTable { table })
        }

        /// The segment (int8) of each `size`-byte item of `values`, -1 where absent.
        fn lookup<'py>(&self, py: Python<'py>, values: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
            let size = self.table.size();
            if !values.len().is_multiple_of(size) {
                return Err(CryptoError::new_err(()));
            }
            let mut out = vec![0i8; values.len() / size];
            guarded(py, || {
                use rayon::prelude::*;
                out.par_chunks_mut(16 * TASK)
                    .zip(values.par_chunks(16 * TASK * size))
                    .for_each(|(slots, items)| self.table.lookup_into(items, slots));
                Ok(())
            })?;
            let packed: Vec<u8> = out.iter().map(|&s| s as u8).collect();
            Ok(PyBytes::new(py, &packed))
        }
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

    /// The curve25519-dalek backend this CPU uses: "avx512ifma", "avx2" or "serial".
    #[pyfunction]
    fn dalek_backend() -> &'static str {
        x25519::dalek_backend()
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
        m.add_function(wrap_pyfunction!(x25519_keys, m)?)?;
        m.add_function(wrap_pyfunction!(hash_to_curve_batch, m)?)?;
        m.add_function(wrap_pyfunction!(hash_to_curve_edwards25519, m)?)?;
        m.add_function(wrap_pyfunction!(sha256_spans, m)?)?;
        m.add_function(wrap_pyfunction!(permutation, m)?)?;
        m.add_function(wrap_pyfunction!(shuffle_packed, m)?)?;
        m.add_function(wrap_pyfunction!(list_sketch, m)?)?;
        m.add_function(wrap_pyfunction!(list_sketch_packed, m)?)?;
        m.add_function(wrap_pyfunction!(hash_to_curve_prefixed, m)?)?;
        m.add_class::<MatchTable>()?;
        m.add_function(wrap_pyfunction!(load_crypto_mb, m)?)?;
        m.add_function(wrap_pyfunction!(x25519_path, m)?)?;
        m.add_function(wrap_pyfunction!(dalek_backend, m)?)?;
        m.add_function(wrap_pyfunction!(bind_threads, m)?)?;
        m.add_function(wrap_pyfunction!(thread_count, m)?)?;
        // ---- ElGamal (the `elgamal` branch): its PyO3 layer is native/src/elgamal/python.rs
        crate::elgamal::python::register(m)?;
        // ---- end ElGamal
        Ok(())
    }
}
