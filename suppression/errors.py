"""The exception hierarchy; every error this package raises derives from SuppressionError.

    SuppressionError
    ├── ConfigError            bad settings or command-line input
    │   └── PolicyError        a policy file that does not parse or breaks a rule
    ├── UnknownListError       a request names a list that does not exist
    ├── InvalidRequestError    a request is malformed (batch too big, bad region)
    ├── InvalidInputError      a region code, number block or version that does not parse
    │                          (also a ValueError)
    ├── NotReadyError          data is not loaded yet, or was lost (resync needed)
    ├── VersionError           a change is older than the data it would apply to
    ├── SnapshotError          a snapshot file is corrupt, truncated or unreadable
    ├── NumberFileError        a number file has lines that are not numbers
    ├── ArchiveError           the change archive cannot be written or read
    │   └── ArchiveCoverageError   the archive cannot answer for that version (before it
    │                              begins, after its end, or behind lost records)
    └── ChangeLogError         the change log cannot be read or written
        ├── InvalidEntryError      an entry is malformed or breaks a rule
        ├── ChangeLogResetError    the log lost its epoch, or changed it: it was reset
        └── ConsentRequiredError   a removal from an opt-out list lacks consent evidence

Domain errors become gRPC status codes in one place: the servicer.
"""

from __future__ import annotations

__all__ = [
    "ArchiveCoverageError",
    "ArchiveError",
    "ChangeLogError",
    "ChangeLogResetError",
    "ConfigError",
    "ConsentRequiredError",
    "InvalidEntryError",
    "InvalidInputError",
    "InvalidRequestError",
    "NotReadyError",
    "NumberFileError",
    "PolicyError",
    "SnapshotError",
    "SuppressionError",
    "UnknownListError",
    "VersionError",
]


class SuppressionError(Exception):
    """The root of every error this package raises."""


class ConfigError(SuppressionError):
    """Settings or command-line input that cannot work."""


class PolicyError(ConfigError):
    """A policy file that does not parse, or breaks a rule (its message names the line)."""


class UnknownListError(SuppressionError):
    """A request names a list that does not exist."""


class InvalidRequestError(SuppressionError):
    """A request is malformed as a whole."""


class InvalidInputError(SuppressionError, ValueError):
    """A value that does not parse: a region code, a number block, a version.

    Also a ValueError, because that is what a caller of a parser expects.
    """


class MisroutedBatchError(SuppressionError):
    """A bulk batch sent to the interactive port of a replica that has a bulk port."""


class NotReadyError(SuppressionError):
    """Data is not loaded, or must be resynchronized from a snapshot."""


class VersionError(SuppressionError):
    """A change would move the data version backwards."""


class SnapshotError(SuppressionError):
    """A snapshot file is corrupt, truncated or unreadable."""


class NumberFileError(SuppressionError):
    """A number file holds lines that are not phone numbers."""


class ChangeLogError(SuppressionError):
    """The change log cannot be read or written."""


class ConsentRequiredError(ChangeLogError):
    """A removal from an opt-out list without consent evidence."""


class InvalidEntryError(ChangeLogError):
    """A change-log entry that cannot be applied: malformed, or breaking a rule."""


class ChangeLogResetError(ChangeLogError):
    """The change log is not the one the writer knew: Redis lost it, or it was reseeded."""


class ArchiveError(SuppressionError):
    """The change archive cannot be written or read."""


class ArchiveCoverageError(ArchiveError):
    """The archive cannot say what the lists held at that version; it never guesses."""
