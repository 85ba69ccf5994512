from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    ALLOWED: _ClassVar[Verdict]
    SUPPRESSED: _ClassVar[Verdict]
    INVALID: _ClassVar[Verdict]
    DEFERRED: _ClassVar[Verdict]

class InvalidReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVALID_REASON_UNSPECIFIED: _ClassVar[InvalidReason]
    UNPARSEABLE: _ClassVar[InvalidReason]
    UNKNOWN_COUNTRY_CODE: _ClassVar[InvalidReason]
    TOO_SHORT: _ClassVar[InvalidReason]
    TOO_LONG: _ClassVar[InvalidReason]
    INVALID_LENGTH: _ClassVar[InvalidReason]
    MISSING_REGION: _ClassVar[InvalidReason]
VERDICT_UNSPECIFIED: Verdict
ALLOWED: Verdict
SUPPRESSED: Verdict
INVALID: Verdict
DEFERRED: Verdict
INVALID_REASON_UNSPECIFIED: InvalidReason
UNPARSEABLE: InvalidReason
UNKNOWN_COUNTRY_CODE: InvalidReason
TOO_SHORT: InvalidReason
TOO_LONG: InvalidReason
INVALID_LENGTH: InvalidReason
MISSING_REGION: InvalidReason

class CheckRequest(_message.Message):
    __slots__ = ("e164", "numbers", "default_region", "lists", "request_id", "as_of_version", "policy", "decide_at_ms", "consent_days", "consent_day", "calling_line", "e164_packed", "packed_answer")
    E164_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    LISTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DECIDE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_DAYS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_DAY_FIELD_NUMBER: _ClassVar[int]
    CALLING_LINE_FIELD_NUMBER: _ClassVar[int]
    E164_PACKED_FIELD_NUMBER: _ClassVar[int]
    PACKED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    e164: _containers.RepeatedScalarFieldContainer[int]
    numbers: _containers.RepeatedScalarFieldContainer[str]
    default_region: str
    lists: _containers.RepeatedScalarFieldContainer[str]
    request_id: int
    as_of_version: str
    policy: str
    decide_at_ms: int
    consent_days: _containers.RepeatedScalarFieldContainer[int]
    consent_day: int
    calling_line: str
    e164_packed: bytes
    packed_answer: bool
    def __init__(self, e164: _Optional[_Iterable[int]] = ..., numbers: _Optional[_Iterable[str]] = ..., default_region: _Optional[str] = ..., lists: _Optional[_Iterable[str]] = ..., request_id: _Optional[int] = ..., as_of_version: _Optional[str] = ..., policy: _Optional[str] = ..., decide_at_ms: _Optional[int] = ..., consent_days: _Optional[_Iterable[int]] = ..., consent_day: _Optional[int] = ..., calling_line: _Optional[str] = ..., e164_packed: _Optional[bytes] = ..., packed_answer: _Optional[bool] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("verdicts", "matched", "list_names", "invalid_reasons", "normalized", "version", "stale", "request_id", "failed_closed", "policy", "policy_version", "rules", "rule_names", "exemptions", "exemption_names", "earliest_ms", "verdicts_packed", "matched_packed", "matched_width")
    class InvalidReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: InvalidReason
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[InvalidReason, str]] = ...) -> None: ...
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    LIST_NAMES_FIELD_NUMBER: _ClassVar[int]
    INVALID_REASONS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_CLOSED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    RULE_NAMES_FIELD_NUMBER: _ClassVar[int]
    EXEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXEMPTION_NAMES_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_MS_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_PACKED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_PACKED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_WIDTH_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedScalarFieldContainer[Verdict]
    matched: _containers.RepeatedScalarFieldContainer[int]
    list_names: _containers.RepeatedScalarFieldContainer[str]
    invalid_reasons: _containers.ScalarMap[int, InvalidReason]
    normalized: _containers.RepeatedScalarFieldContainer[int]
    version: str
    stale: bool
    request_id: int
    failed_closed: bool
    policy: str
    policy_version: str
    rules: _containers.RepeatedScalarFieldContainer[int]
    rule_names: _containers.RepeatedScalarFieldContainer[str]
    exemptions: _containers.RepeatedScalarFieldContainer[int]
    exemption_names: _containers.RepeatedScalarFieldContainer[str]
    earliest_ms: _containers.RepeatedScalarFieldContainer[int]
    verdicts_packed: bytes
    matched_packed: bytes
    matched_width: int
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, str]]] = ..., matched: _Optional[_Iterable[int]] = ..., list_names: _Optional[_Iterable[str]] = ..., invalid_reasons: _Optional[_Mapping[int, InvalidReason]] = ..., normalized: _Optional[_Iterable[int]] = ..., version: _Optional[str] = ..., stale: _Optional[bool] = ..., request_id: _Optional[int] = ..., failed_closed: _Optional[bool] = ..., policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., rules: _Optional[_Iterable[int]] = ..., rule_names: _Optional[_Iterable[str]] = ..., exemptions: _Optional[_Iterable[int]] = ..., exemption_names: _Optional[_Iterable[str]] = ..., earliest_ms: _Optional[_Iterable[int]] = ..., verdicts_packed: _Optional[bytes] = ..., matched_packed: _Optional[bytes] = ..., matched_width: _Optional[int] = ...) -> None: ...

class RecordAttemptsRequest(_message.Message):
    __slots__ = ("e164", "times_ms", "calling_lines")
    E164_FIELD_NUMBER: _ClassVar[int]
    TIMES_MS_FIELD_NUMBER: _ClassVar[int]
    CALLING_LINES_FIELD_NUMBER: _ClassVar[int]
    e164: _containers.RepeatedScalarFieldContainer[int]
    times_ms: _containers.RepeatedScalarFieldContainer[int]
    calling_lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, e164: _Optional[_Iterable[int]] = ..., times_ms: _Optional[_Iterable[int]] = ..., calling_lines: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStatus(_message.Message):
    __slots__ = ("name", "count", "bytes", "is_default", "is_opt_out")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    IS_OPT_OUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    bytes: int
    is_default: bool
    is_opt_out: bool
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., bytes: _Optional[int] = ..., is_default: _Optional[bool] = ..., is_opt_out: _Optional[bool] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("lists", "version", "ready", "stale", "staleness_ms", "max_batch", "packed")
    LISTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[ListStatus]
    version: str
    ready: bool
    stale: bool
    staleness_ms: int
    max_batch: int
    packed: bool
    def __init__(self, lists: _Optional[_Iterable[_Union[ListStatus, _Mapping]]] = ..., version: _Optional[str] = ..., ready: _Optional[bool] = ..., stale: _Optional[bool] = ..., staleness_ms: _Optional[int] = ..., max_batch: _Optional[int] = ..., packed: _Optional[bool] = ...) -> None: ...

class SuppressRequest(_message.Message):
    __slots__ = ("e164", "numbers", "default_region", "list", "source", "actor", "evidence", "create_list", "day", "days")
    E164_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_LIST_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    e164: _containers.RepeatedScalarFieldContainer[int]
    numbers: _containers.RepeatedScalarFieldContainer[str]
    default_region: str
    list: str
    source: str
    actor: str
    evidence: str
    create_list: bool
    day: int
    days: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, e164: _Optional[_Iterable[int]] = ..., numbers: _Optional[_Iterable[str]] = ..., default_region: _Optional[str] = ..., list: _Optional[str] = ..., source: _Optional[str] = ..., actor: _Optional[str] = ..., evidence: _Optional[str] = ..., create_list: _Optional[bool] = ..., day: _Optional[int] = ..., days: _Optional[_Iterable[int]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("e164", "numbers", "default_region", "list", "source", "actor", "evidence")
    E164_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    e164: _containers.RepeatedScalarFieldContainer[int]
    numbers: _containers.RepeatedScalarFieldContainer[str]
    default_region: str
    list: str
    source: str
    actor: str
    evidence: str
    def __init__(self, e164: _Optional[_Iterable[int]] = ..., numbers: _Optional[_Iterable[str]] = ..., default_region: _Optional[str] = ..., list: _Optional[str] = ..., source: _Optional[str] = ..., actor: _Optional[str] = ..., evidence: _Optional[str] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("version", "applied", "invalid_reasons")
    class InvalidReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: InvalidReason
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[InvalidReason, str]] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    INVALID_REASONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    applied: int
    invalid_reasons: _containers.ScalarMap[int, InvalidReason]
    def __init__(self, version: _Optional[str] = ..., applied: _Optional[int] = ..., invalid_reasons: _Optional[_Mapping[int, InvalidReason]] = ...) -> None: ...

class FetchSnapshotRequest(_message.Message):
    __slots__ = ("name", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("name", "size", "sha256", "offset", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    offset: int
    data: bytes
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("number_e164", "number", "default_region", "version", "at_ms", "policy", "consent_day", "calling_line")
    NUMBER_E164_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CONSENT_DAY_FIELD_NUMBER: _ClassVar[int]
    CALLING_LINE_FIELD_NUMBER: _ClassVar[int]
    number_e164: int
    number: str
    default_region: str
    version: str
    at_ms: int
    policy: str
    consent_day: int
    calling_line: str
    def __init__(self, number_e164: _Optional[int] = ..., number: _Optional[str] = ..., default_region: _Optional[str] = ..., version: _Optional[str] = ..., at_ms: _Optional[int] = ..., policy: _Optional[str] = ..., consent_day: _Optional[int] = ..., calling_line: _Optional[str] = ...) -> None: ...

class ExplainedPolicy(_message.Message):
    __slots__ = ("policy", "policy_version", "verdict", "rules", "exemptions", "earliest_ms", "decided_at_ms", "note")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    EXEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    policy: str
    policy_version: str
    verdict: Verdict
    rules: _containers.RepeatedScalarFieldContainer[str]
    exemptions: _containers.RepeatedScalarFieldContainer[str]
    earliest_ms: int
    decided_at_ms: int
    note: str
    def __init__(self, policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., rules: _Optional[_Iterable[str]] = ..., exemptions: _Optional[_Iterable[str]] = ..., earliest_ms: _Optional[int] = ..., decided_at_ms: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ExplainedChange(_message.Message):
    __slots__ = ("version", "op", "list", "source", "actor", "evidence", "timestamp_ms", "producer", "numbers_in_change", "block")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_IN_CHANGE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    version: str
    op: str
    list: str
    source: str
    actor: str
    evidence: str
    timestamp_ms: int
    producer: str
    numbers_in_change: int
    block: bool
    def __init__(self, version: _Optional[str] = ..., op: _Optional[str] = ..., list: _Optional[str] = ..., source: _Optional[str] = ..., actor: _Optional[str] = ..., evidence: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., producer: _Optional[str] = ..., numbers_in_change: _Optional[int] = ..., block: _Optional[bool] = ...) -> None: ...

class ExplainedList(_message.Message):
    __slots__ = ("name", "kind", "on_list", "since", "since_note", "history")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ON_LIST_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SINCE_NOTE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    on_list: bool
    since: ExplainedChange
    since_note: str
    history: _containers.RepeatedCompositeFieldContainer[ExplainedChange]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., on_list: _Optional[bool] = ..., since: _Optional[_Union[ExplainedChange, _Mapping]] = ..., since_note: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ExplainedChange, _Mapping]]] = ...) -> None: ...

class ArchiveSegment(_message.Message):
    __slots__ = ("name", "bytes", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    bytes: int
    sha256: str
    def __init__(self, name: _Optional[str] = ..., bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("number_masked", "at", "verdict", "verdict_basis", "lists", "base_version", "base_checkpoint", "base_sha256", "archive_begins", "archive_ends", "segments", "damage", "policy")
    NUMBER_MASKED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_BASIS_FIELD_NUMBER: _ClassVar[int]
    LISTS_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    BASE_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_BEGINS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ENDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    number_masked: str
    at: str
    verdict: Verdict
    verdict_basis: str
    lists: _containers.RepeatedCompositeFieldContainer[ExplainedList]
    base_version: str
    base_checkpoint: str
    base_sha256: str
    archive_begins: str
    archive_ends: str
    segments: _containers.RepeatedCompositeFieldContainer[ArchiveSegment]
    damage: _containers.RepeatedScalarFieldContainer[str]
    policy: ExplainedPolicy
    def __init__(self, number_masked: _Optional[str] = ..., at: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., verdict_basis: _Optional[str] = ..., lists: _Optional[_Iterable[_Union[ExplainedList, _Mapping]]] = ..., base_version: _Optional[str] = ..., base_checkpoint: _Optional[str] = ..., base_sha256: _Optional[str] = ..., archive_begins: _Optional[str] = ..., archive_ends: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[ArchiveSegment, _Mapping]]] = ..., damage: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[ExplainedPolicy, _Mapping]] = ...) -> None: ...
