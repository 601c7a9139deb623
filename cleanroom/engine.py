"""Where the per-record cryptography of a session runs: in this process, or on every core.

Every heavy step of the protocol is a pure function of a key and a batch (hash to curve and
exponentiate, exponentiate, encrypt indicators, validate and sum ciphertexts), so the state
machines hand batches to an :class:`Engine` and get futures back. The partner starts
exponentiating the brand's first chunk while later chunks are still arriving, and so on
for every round. Worker processes are started with ``spawn`` (never ``fork``: the parent
runs gRPC threads) on first use, and batches too small to be worth the round trip run
inline.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from threading import Lock
from typing import Any, TypeVar

import numpy as np

from cleanroom.crypto.commutative import CommutativeCipher
from cleanroom.crypto.elgamal import ElGamalPrivateKey, add, check_encodings, sum_by_mask
from cleanroom.crypto.hash_to_curve import hash_to_curve_batch

R = TypeVar("R")
INLINE_BELOW = 2048  # elements: below this a batch is not worth starting or feeding a worker


class Engine:
    """Runs batch functions inline (``workers=1``) or in a pool of worker processes."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._lock = Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    def submit(self, size: int, fn: Callable[..., R], *args: Any) -> Future[R]:
        """Run ``fn(*args)`` on a worker (or inline for a batch of ``size`` < INLINE_BELOW)."""
        if self.workers > 1 and size >= INLINE_BELOW:
            return self._executor().submit(fn, *args)
        done: Future[R] = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def map(self, fn: Callable[..., R], jobs: Iterable[tuple[int, tuple[Any, ...]]]) -> Iterator[R]:
        """Results of ``fn(*args)`` for each ``(size, args)`` job, in order, at most two per
        worker in flight, so memory stays bounded however long the input is."""
        pending: deque[Future[R]] = deque()
        jobs = iter(jobs)
        for size, args in itertools.islice(jobs, 2 * self.workers):
            pending.append(self.submit(size, fn, *args))
        while pending:
            result = pending.popleft().result()
            for size, args in itertools.islice(jobs, 1):
                pending.append(self.submit(size, fn, *args))
            yield result

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None


INLINE = Engine(workers=1)


# -- the batch functions the workers run (module level, so they pickle by name) -------------


def hash_and_encrypt(cipher: CommutativeCipher, messages: Sequence[bytes], dst: bytes) -> bytes:
    """E_k(H(m)) for each message: the first exponentiation of either side."""
    return cipher.encrypt(hash_to_curve_batch(messages, dst)) if messages else b""


def encrypt(cipher: CommutativeCipher, elements: bytes) -> bytes:
    return cipher.encrypt(elements) if elements else b""


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
