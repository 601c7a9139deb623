"""Where the per-record cryptography of a session runs: in this process, on every core.

Every heavy step of the protocol is a pure function of a key and a batch (hash to curve and
exponentiate, exponentiate, encrypt indicators, validate and sum ciphertexts), so the state
machines hand batches to a :class:`BatchRunner` and get futures back. The batch functions
call the native core (``cleanroom._native``), which releases the GIL and spreads each batch
over ``workers`` rayon threads. The runner runs them on one background thread, so the
partner exponentiates the brand's first chunk while later chunks are still arriving, and so
on for every round. There are no worker processes: nothing is pickled, no key leaves the
process, nothing outlives a killed party, and a plain script needs no ``__main__`` guard.

(The user-facing ``--engine local|spark`` is another thing: where a party's own list is
prepared and encrypted, :mod:`cleanroom.lists.local` or :mod:`cleanroom.lists.spark`.)
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Lock
from typing import Any, TypeVar

import numpy as np

from cleanroom import _native
from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.elgamal import ElGamalPrivateKey
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch, hash_to_curve_prefixed
from cleanroom.crypto.summation import add, sum_by_mask
from cleanroom.crypto.validation import check_encodings

R = TypeVar("R")
INLINE_BELOW = (
    2048  # elements: below this a batch runs on the caller's thread, not in the background
)
IN_FLIGHT = 2  # jobs of a map submitted ahead: one computing while the next is queued


class BatchRunner:
    """Runs batch functions on a background thread whose native calls use ``workers``
    threads (``workers=1``: inline on the caller's thread, one core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._thread: ThreadPoolExecutor | None = None
        self._lock = Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(
                    1,
                    thread_name_prefix="cleanroom-batches",
                    initializer=_native.bind_threads,
                    initargs=(self.workers,),
                )
            return self._thread

    def submit(self, size: int, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` in the background (or inline for a batch of ``size`` < INLINE_BELOW)."""
        if self.workers > 1 and size >= INLINE_BELOW:
            return self._executor().submit(fn, *args)
        done: Future[R] = Future()
        previous = _native.bind_threads(self.workers)
        try:
            done.set_result(fn(*args))
        except BaseException as exc:
            done.set_exception(exc)
        finally:
            _native.bind_threads(previous)
        return done

    def map(self, fn: Callable[..., R], jobs: Iterable[tuple[int, tuple[Any, ...]]]) -> Iterator[R]:
        """Results of ``fn(*args)`` for each ``(size, args)`` job, in order, at most
        IN_FLIGHT ahead, so memory stays bounded however long the input is."""
        jobs = iter(jobs)
        pending: deque[Future[R]] = deque(
            self.submit(size, fn, *args) for size, args in itertools.islice(jobs, IN_FLIGHT)
        )
        while pending:
            result = pending.popleft().result()
            for size, args in itertools.islice(jobs, 1):
                pending.append(self.submit(size, fn, *args))
            yield result

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._thread.shutdown(cancel_futures=True)
                self._thread = None


INLINE = BatchRunner(workers=1)


# -- the batch functions the runner runs -------------------------------------------------------


def hash_and_encrypt(cipher: CommutativeCipher, messages: Sequence[bytes], dst: bytes) -> bytes:
    """E_k(H(m)) for each message: the first exponentiation of either side."""
    return cipher.encrypt_own(hash_to_curve_batch(messages, dst)) if messages else b""


def hash_prefixed_and_encrypt(
    cipher: CommutativeCipher, prefix: bytes, digests: bytes, dst: bytes
) -> bytes:
    """E_k(H(prefix || digest)) for each 32-byte digest of ``digests``: :func:`hash_and_encrypt`
    of packed digests that share a prefix, without a Python ``bytes`` per message."""
    return cipher.encrypt_own(hash_to_curve_prefixed(prefix, digests, dst)) if digests else b""


def encrypt(cipher: CommutativeCipher, elements: bytes) -> bytes:
    """E_k of elements received from the peer."""
    return cipher.encrypt(elements) if elements else b""


def encrypt_own(cipher: CommutativeCipher, points: bytes) -> bytes:
    """E_k of points this party hashed from its own identifiers (prepared once, e.g. on Spark)."""
    return cipher.encrypt_own(points) if points else b""


def encrypt_indicators(key: ElGamalPrivateKey, bits: np.ndarray) -> bytes:
    return key.encrypt_indicators(bits) if len(bits) else b""


def check_and_sum(per_segment: Sequence[bytes], masks: np.ndarray) -> list[list[bytes]]:
    """Per segment, the ciphertext sums of the records each attribute mask selects.

    Encodings are checked here and curve membership by each addition; the subgroup check
    happens once per sum (``clear_torsion``), not once per ciphertext (docs/protocol.md).
    """
    sums = []
    for packed in per_segment:
        check_encodings(packed)
        sums.append(sum_by_mask(packed, masks))
    return sums


def add_sums(total: list[list[bytes | None]], part: list[list[bytes]]) -> None:
    """Accumulate one chunk's (segment, attribute) sums into ``total[attribute][segment]``."""
    for s, per_attribute in enumerate(part):
        for a, value in enumerate(per_attribute):
            current = total[a][s]
            total[a][s] = value if current is None else add(current, value)
