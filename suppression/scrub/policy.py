"""The pre-dial policy a scrub decides under: which one, for which instant, and from which file.

The decision itself is not here: a local scrub calls
:func:`suppression.policy.batch.check_with_policy`, the function the server's
``Check`` runs, and a remote scrub sends the policy's name and the instant as
the request's policy fields, so the servers run it. This module only fixes
what every row is decided with, once, before the first row: the instant
(``--decide-at``, or the scrub's start), and for a local scrub the policy file
and its version. A resumed scrub keeps the instant its checkpoint recorded,
and refuses to go on under another policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from suppression.errors import ConfigError
from suppression.policy.batch import PolicyRequest
from suppression.policy.store import Served, open_store
from suppression.policyargs import decide_at_ms
from suppression.scrub.options import ScrubOptions
from suppression.scrub.writing import earliest_text

__all__ = ["ScrubPolicy", "scrub_policy"]


@dataclass(frozen=True, slots=True)
class ScrubPolicy:
    """The policy every row of one scrub is decided under, and the instant."""

    name: str
    """The policy asked for; "" is the default one (of the file, or of the servers)."""
    at_ms: int
    """The instant every row is decided for, milliseconds since the epoch."""
    served: Served | None = None
    """Local mode: the policies and dated lists of ``--policy-file``; None in remote mode."""

    @property
    def request(self) -> PolicyRequest:
        """What a local batch is decided with; the same fields a remote one sends."""
        return PolicyRequest(self.name, self.at_ms)

    @property
    def version(self) -> str:
        """The policy file's version; "" in remote mode (the answers carry the servers')."""
        return self.served.policies.version if self.served is not None else ""

    @property
    def resolved(self) -> str:
        """The policy's own name (the default resolved); the asked name in remote mode."""
        if self.served is None:
            return self.name
        return self.served.policies.get(self.name).name

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resume decides the rest alike."""
        return {"name": self.name, "at_ms": self.at_ms, "version": self.version}


def scrub_policy(
    options: ScrubOptions,
    resuming: bool = False,
    recorded: dict[str, Any] | None = None,
    *,
    now: float | None = None,
) -> ScrubPolicy | None:
    """The scrub's policy, or None when it decides on the lists alone (as before policies).

    Args:
        options: the scrub's options.
        resuming: a checkpoint of an interrupted scrub is being resumed.
        recorded: what that checkpoint recorded of its policy (None: it had none).
        now: the current time in seconds (for tests); None reads the clock.

    Raises:
        ConfigError: options that do not go together, a bad time, a bad policy file,
            an unknown policy, or a resume under another policy than the interrupted
            scrub's.
    """
    if not options.under_policy:
        if options.dated_lists:
            raise ConfigError("--dated-list is read by the policies: give --policy-file too")
        if recorded is not None:
            raise _refused(recorded, "no policy")
        return None
    if options.targets and (options.policy_file is not None or options.dated_lists):
        raise ConfigError(
            "--policy-file and --dated-list are read by the server (`suppression serve "
            "--policy-file`); with --target it decides under its own file: name one of its "
            "policies with --policy, or drop --target to decide locally"
        )
    if not options.targets and options.policy_file is None:
        raise ConfigError(
            "--policy and --decide-at choose among the policies of --policy-file: give it "
            "to decide locally, or --target a server started with --policy-file"
        )
    if options.lists:
        raise ConfigError(
            "a policy says which lists suppress: drop --lists, or scrub without a policy"
        )
    if options.as_of:
        raise ConfigError(
            "--as-of with a policy is not supported: scrub the lists of then without "
            "--policy-file, or decide under the policy with today's lists"
        )
    asked = decide_at_ms(options.decide_at)
    if asked and asked < 1000:
        raise ConfigError(f"--decide-at {options.decide_at!r} is before 1970")
    served = None
    if options.policy_file is not None:
        store = open_store(options.policy_file, options.dated_lists, options.region)
        assert store is not None
        served = store.served
        try:
            served.policies.get(options.policy)
        except KeyError:
            known = ", ".join(sorted(served.policies.policies))
            raise ConfigError(
                f"--policy {options.policy!r}: {options.policy_file} has no such policy; "
                f"policies: {known}"
            ) from None
    at_ms = asked or int(time.time() if now is None else now) * 1000
    if resuming:
        if recorded is None:
            raise _refused(None, _describe(ScrubPolicy(options.policy, at_ms, served).record()))
        at_ms = asked or int(recorded.get("at_ms", 0))
        current = ScrubPolicy(options.policy, at_ms, served)
        if (
            recorded.get("name") != options.policy
            or recorded.get("at_ms") != at_ms
            or (served is not None and recorded.get("version") != current.version)
        ):
            raise _refused(recorded, _describe(current.record()))
        return current
    return ScrubPolicy(options.policy, at_ms, served)


def _describe(record: dict[str, Any]) -> str:
    name = f"policy {record['name']}" if record.get("name") else "the default policy"
    version = f" version {record['version']}" if record.get("version") else ""
    at = f" for {earliest_text(int(record['at_ms']))}" if record.get("at_ms") else ""
    return f"{name}{version}{at}"


def _refused(recorded: dict[str, Any] | None, now: str) -> ConfigError:
    before = _describe(recorded) if recorded else "no policy"
    return ConfigError(
        f"--resume: the interrupted scrub decided under {before}, this one would under "
        f"{now}; resume with the same --policy-file, --policy and --decide-at (or none), "
        "or scrub again without --resume"
    )
