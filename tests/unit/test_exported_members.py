from __future__ import annotations

import suppression


def test_public_api_is_pinned() -> None:
    assert suppression.__all__ == sorted(suppression.__all__)
    assert suppression.__all__ == [
        "Change",
        "ChangeLogError",
        "ChangeLogFollower",
        "CheckOutcome",
        "ConfigError",
        "ConsentRequiredError",
        "Entry",
        "FollowerState",
        "InvalidEntryError",
        "InvalidReason",
        "InvalidRequestError",
        "ListInfo",
        "ListKind",
        "ListView",
        "Normalizer",
        "NotReadyError",
        "NumberBlock",
        "NumberFileError",
        "Op",
        "Settings",
        "Snapshot",
        "SnapshotError",
        "SuppressionError",
        "SuppressionLists",
        "UnknownListError",
        "Verdict",
        "Version",
        "VersionError",
        "check_batch",
        "mask_number",
        "parse_block",
        "read_snapshot",
        "write_snapshot",
    ]
    for name in suppression.__all__:
        assert getattr(suppression, name) is not None
