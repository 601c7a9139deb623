"""The per-record work of a session as PySpark jobs, for lists that live on a cluster.

With ``--engine spark`` a party's own list never comes to the session's process. Two jobs
run where the list lives (a Parquet file or directory, a CSV file, or a catalog table
``table:NAME``), through ``mapInArrow`` over Arrow record batches:

* **prepare**, once per list (at server start-up; before the client connects): normalize
  and SHA-256 every identifier with the same code as the local engine, count the input
  quality, apply the contract's ``max_invalid_fraction``, check segment labels and
  attribute values, de-duplicate each key (first occurrence in read order wins, as
  locally), drop records without a key and hash every digest to the curve (RFC 9380, key
  independent, so done once). Spark keeps the result (``persist``).
* **encrypt**, once per session: one X25519 multiplication per element with the session's
  fresh key, the elements (brand) or records (partner) sorted by their encrypted value,
  written as Parquet to a scratch directory that the session streams back in order.

Sorting by encrypted value is how this engine hides the list's row order (the local
engine shuffles with a secret random permutation instead, which lets it stream while it
encrypts): the order is a function of values the peer receives anyway, so it tells the
peer nothing, and unlike random sort keys it is the same when Spark recomputes a task.

The session key goes to the executors inside the job, and the scratch directory holds
this party's own elements under that key until the session has streamed them; both stay
on this party's cluster. On a shared cluster turn on Spark's RPC and spill encryption
(``spark.network.crypto.enabled``, ``spark.io.encryption.enabled``): docs/threat-model.md.
The exponentiations of the *peer's* stream (rounds 2 and 3) arrive over gRPC at the
session's process and run there on its native threads (``--workers``), as with the local
engine.

Every kernel hands whole Arrow buffers to the native batch functions
(:func:`~cleanroom.crypto.hash_to_curve.hash_to_curve_prefixed` of a key's prefix and the
packed digests, :meth:`~cleanroom.crypto.commutative.CommutativeCipher.encrypt`): packed
32-byte values in, packed values out, no Python object per row, on as many native threads
as Spark gave the task cores.

The package, by concern: :mod:`.session` (starting Spark), :mod:`.sources` (reading a
list), :mod:`.kernels` (the ``mapInArrow`` functions), :mod:`.checks` (input quality,
labels and attributes, de-duplication) and :mod:`.lists` (the list classes, which
implement :mod:`cleanroom.protocol.list_port`, and their preparation).
"""

from cleanroom.lists.spark.lists import (
    SparkBrandList,
    SparkList,
    SparkPartnerList,
    prepare_brand_list_spark,
    prepare_partner_list_spark,
)
from cleanroom.lists.spark.session import start_spark

__all__ = [
    "SparkBrandList",
    "SparkList",
    "SparkPartnerList",
    "prepare_brand_list_spark",
    "prepare_partner_list_spark",
    "start_spark",
]
