"""An in-process transport: pairs a PartnerSession with a BrandSession directly.

No network and no threads: tests and benchmarks of the protocol itself use it. Every
message is serialized and parsed as it would be on the wire, so ``on_wire`` sees exactly
the bytes gRPC would carry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from cleanroom.errors import ProtocolError
from cleanroom.proto.cleanroom.v1 import session_pb2 as pb
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession

WireTap = Callable[[str, bytes], None]


def run_in_process(
    brand: BrandSession, partner: PartnerSession, on_wire: WireTap | None = None
) -> None:
    """Run one whole session; both sides' ``report`` is set when it returns."""
    to_brand: deque[bytes] = deque()
    to_partner: deque[bytes] = deque()

    def send(
        direction: str, outbox: deque[bytes], message: pb.PartnerMessage | pb.BrandMessage
    ) -> None:
        data = message.SerializeToString()
        if on_wire is not None:
            on_wire(direction, data)
        outbox.append(data)

    send("partner->brand", to_brand, partner.hello())
    try:
        while not (brand.finished and partner.finished):
            if to_brand:
                for answer in brand.receive(pb.PartnerMessage.FromString(to_brand.popleft())):
                    send("brand->partner", to_partner, answer)
            elif to_partner:
                for message in partner.receive(pb.BrandMessage.FromString(to_partner.popleft())):
                    send("partner->brand", to_brand, message)
            else:
                raise ProtocolError("the session stalled: neither side has anything to say")
    except Exception as exc:
        brand.abort(str(exc))
        partner.abort(str(exc))
        raise
