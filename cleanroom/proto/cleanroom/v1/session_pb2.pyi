from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PartnerMessage(_message.Message):
    __slots__ = ("hello", "double_encrypted", "partner_records", "attribute_sums", "release_ack", "abort")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    PARTNER_RECORDS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_SUMS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_ACK_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    double_encrypted: DoubleEncryptedChunk
    partner_records: PartnerRecordsChunk
    attribute_sums: AttributeSums
    release_ack: ReleaseAck
    abort: Abort
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., double_encrypted: _Optional[_Union[DoubleEncryptedChunk, _Mapping]] = ..., partner_records: _Optional[_Union[PartnerRecordsChunk, _Mapping]] = ..., attribute_sums: _Optional[_Union[AttributeSums, _Mapping]] = ..., release_ack: _Optional[_Union[ReleaseAck, _Mapping]] = ..., abort: _Optional[_Union[Abort, _Mapping]] = ...) -> None: ...

class BrandMessage(_message.Message):
    __slots__ = ("hello_reply", "brand_elements", "indicators", "release")
    HELLO_REPLY_FIELD_NUMBER: _ClassVar[int]
    BRAND_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    hello_reply: HelloReply
    brand_elements: BrandElementsChunk
    indicators: IndicatorsChunk
    release: Release
    def __init__(self, hello_reply: _Optional[_Union[HelloReply, _Mapping]] = ..., brand_elements: _Optional[_Union[BrandElementsChunk, _Mapping]] = ..., indicators: _Optional[_Union[IndicatorsChunk, _Mapping]] = ..., release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "contract_id", "contract_sha256", "partner_records")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    PARTNER_RECORDS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    contract_id: str
    contract_sha256: str
    partner_records: int
    def __init__(self, protocol_version: _Optional[int] = ..., contract_id: _Optional[str] = ..., contract_sha256: _Optional[str] = ..., partner_records: _Optional[int] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("session_id", "brand_records", "brand_elements", "elgamal_public_key", "match_public_key")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_RECORDS_FIELD_NUMBER: _ClassVar[int]
    BRAND_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    ELGAMAL_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    MATCH_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    brand_records: _containers.RepeatedScalarFieldContainer[int]
    brand_elements: _containers.RepeatedScalarFieldContainer[int]
    elgamal_public_key: bytes
    match_public_key: bytes
    def __init__(self, session_id: _Optional[str] = ..., brand_records: _Optional[_Iterable[int]] = ..., brand_elements: _Optional[_Iterable[int]] = ..., elgamal_public_key: _Optional[bytes] = ..., match_public_key: _Optional[bytes] = ...) -> None: ...

class BrandElementsChunk(_message.Message):
    __slots__ = ("segment", "key", "elements", "last")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    segment: int
    key: int
    elements: bytes
    last: bool
    def __init__(self, segment: _Optional[int] = ..., key: _Optional[int] = ..., elements: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class DoubleEncryptedChunk(_message.Message):
    __slots__ = ("segment", "key", "elements", "last")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    segment: int
    key: int
    elements: bytes
    last: bool
    def __init__(self, segment: _Optional[int] = ..., key: _Optional[int] = ..., elements: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class PartnerRecordsChunk(_message.Message):
    __slots__ = ("elements", "last")
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    elements: bytes
    last: bool
    def __init__(self, elements: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class IndicatorsChunk(_message.Message):
    __slots__ = ("ciphertexts", "last")
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: bytes
    last: bool
    def __init__(self, ciphertexts: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class AttributeSums(_message.Message):
    __slots__ = ("ciphertexts", "base_counts")
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    BASE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: bytes
    base_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ciphertexts: _Optional[bytes] = ..., base_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("report_json", "brand_signature")
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    BRAND_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    report_json: bytes
    brand_signature: bytes
    def __init__(self, report_json: _Optional[bytes] = ..., brand_signature: _Optional[bytes] = ...) -> None: ...

class ReleaseAck(_message.Message):
    __slots__ = ("transcript_sha256", "partner_signature")
    TRANSCRIPT_SHA256_FIELD_NUMBER: _ClassVar[int]
    PARTNER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    transcript_sha256: str
    partner_signature: bytes
    def __init__(self, transcript_sha256: _Optional[str] = ..., partner_signature: _Optional[bytes] = ...) -> None: ...

class Abort(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...
