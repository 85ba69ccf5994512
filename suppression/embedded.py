"""An embedded replica: the lists inside a Python dialer or job, answered in process.

A :class:`EmbeddedReplica` is the server's :class:`~suppression.replica.Replica`
without the gRPC shell: it loads the newest snapshot of a data directory (or
first fetches one from a running replica), follows the change log itself, and
answers ``check`` through the same code as a server's ``Check`` (lists,
policies, fail-closed), so its answers, versions and staleness mean exactly
what a server's mean. ``check_one`` is the single-number fast path for the
common case without policies. When to use it instead of the server:
docs/embedded.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from suppression.checker import CheckOutcome, Verdict, decide_one
from suppression.datasource import DataSource, snapshot_key
from suppression.e164 import Normalizer, validate_region
from suppression.errors import ConfigError
from suppression.freshness import Freshness
from suppression.replica import ChangeLogOptions, Replica

if TYPE_CHECKING:
    from suppression.policy.batch import PolicyRequest

__all__ = ["EmbeddedReplica"]

logger = logging.getLogger(__name__)


class EmbeddedReplica:
    """The suppression lists in this process, kept current from the change log.

    Example::

        with EmbeddedReplica("/data/suppression", redis_url="redis://redis:6379/0") as lists:
            if lists.check_one(12125550123) is Verdict.ALLOWED:
                dial(...)
            store(call_id, lists.version)   # what the lists said when you dialed

    Thread-safe: checks read an immutable view; the follower swaps in the next.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        redis_url: str = "",
        stream: str = "suppression:deltas",
        sentinels: Sequence[str] = (),
        sentinel_master: str = "",
        peers: Sequence[str] = (),
        peer_token: str = "",
        lists: Sequence[str] = (),
        region: str = "",
        max_staleness: float = 10.0,
        fail_closed: bool = False,
        policy_file: Path | str | None = None,
        dated_lists: Sequence[str] = (),
        snapshot_key_file: Path | str | None = None,
        parse_cache_size: int = 200_000,
    ) -> None:
        """Describe the replica; :meth:`start` loads and follows.

        Args:
            data_dir: directory of snapshot files (the newest is loaded); the
                same layout a server's ``--data-dir`` has.
            redis_url: the change log's Redis; empty serves the snapshot as it
                is, never stale and never updated (a batch job on a frozen copy).
            stream: the change-log stream key, as the servers'.
            sentinels: Redis Sentinels (``host:port``) naming the primary.
            sentinel_master: the master name the sentinels monitor.
            peers: running replicas (``host:port``) to fetch the newest
                snapshot from when ``data_dir`` holds none.
            peer_token: a bearer token with the admin scope, for such peers.
            lists: lists checked when a call names none; empty: the data's
                default lists.
            region: default region (``US``, ``CN``) for national number forms.
            max_staleness: seconds without confirming the data is current after
                which answers are stale, as a server's ``--max-staleness``.
            fail_closed: answer every valid number SUPPRESSED while stale or
                known to miss changes, as a server's ``--fail-closed``.
            policy_file: pre-dial policies (docs/policy.md): every check is
                then decided under one, through the server's code.
            dated_lists: ``NAME=FILE`` dated lists for the policies.
            snapshot_key_file: every snapshot must be signed with this key.
            parse_cache_size: loose-format parse results kept (LRU).

        Raises:
            ConfigError: a bad region, key file or option combination.
        """
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._peers = tuple(peers)
        self._peer_token = peer_token
        if self._peers and self._data_dir is None:
            raise ConfigError("peers fill a data directory: give data_dir too")
        self._region = validate_region(region) if region else ""
        self._lists = tuple(lists)
        self._normalizer = Normalizer(parse_cache_size)
        source = DataSource(
            data_dir=self._data_dir,
            region=self._region,
            default_lists=self._lists,
            snapshot_key=snapshot_key(Path(snapshot_key_file) if snapshot_key_file else None),
        )
        change_log = None
        if redis_url:
            change_log = ChangeLogOptions(
                redis_url=redis_url,
                stream=stream,
                sentinels=tuple(sentinels),
                sentinel_master=sentinel_master,
                max_staleness=max_staleness,
                fail_closed=fail_closed,
            )
        policies = None
        if policy_file is not None:
            from suppression.policy.store import open_store

            policies = open_store(Path(policy_file), tuple(dated_lists), self._region)
        self._replica = Replica(source, change_log, None, policies=policies)
        self._policies = policies is not None
        self._started = False

    # -- life cycle -----------------------------------------------------------

    def start(self) -> EmbeddedReplica:
        """Load the newest snapshot (fetched from a peer if there is none) and follow the log.

        Returns once the data is loaded; the follower catches up in the
        background, and answers are stale until it has.

        Raises:
            SnapshotError: no snapshot could be read or fetched.
            ConfigError: nothing to load.
        """
        if self._started:
            return self
        if self._peers and self._data_dir is not None:
            from suppression.peersnapshot import PeerFetcher
            from suppression.snapshot import find_newest

            if find_newest(self._data_dir) is None:
                fetched = PeerFetcher(self._peers, token=self._peer_token).fetch(self._data_dir)
                logger.info("fetched %s from %s", fetched.path.name, fetched.peer)
        loaded = self._replica.start()
        self._started = True
        logger.info(
            "embedded replica loaded %d lists at version %s in %.2f s",
            len(loaded.lists.view.bitmaps),
            loaded.lists.version,
            loaded.seconds,
        )
        return self

    def stop(self) -> None:
        """Stop following the change log."""
        if self._started:
            self._replica.stop()
            self._started = False

    def __enter__(self) -> EmbeddedReplica:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state ------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The version answers are read at now: store it with each call record."""
        return str(self._replica.view().version)

    @property
    def freshness(self) -> Freshness:
        """Stale or not, and since how long, as a server reports it."""
        return self._replica.freshness()

    @property
    def serving(self) -> bool:
        """Whether the data is loaded and not known to miss changes (a server's SERVING)."""
        return self._replica.serving

    # -- questions ----------------------------------------------------------------

    def check(
        self,
        e164: Sequence[int] = (),
        numbers: Sequence[str] = (),
        *,
        lists: Sequence[str] | None = None,
        region: str | None = None,
        policy: PolicyRequest | None = None,
    ) -> CheckOutcome:
        """Decide a batch, exactly as a server's ``Check`` decides it.

        Args:
            e164: numbers as E.164 integers, the fast path.
            numbers: numbers as text; national forms need ``region``.
            lists: lists to check; None: the replica's, empty: the data's defaults.
            region: default region for national forms; None: the replica's.
            policy: which policy, when, consent days and calling line; only with
                a ``policy_file``.

        Returns:
            Per number, the verdict and the lists that hold it; the version read;
            ``failed_closed`` when every valid number was answered SUPPRESSED
            because the data was too stale to trust.

        Raises:
            NotReadyError: not started, or known to miss changes (and not
                failing closed): never an ALLOWED from incomplete data.
            UnknownListError: a named list does not exist.
            InvalidRequestError: policy fields without policies, and the like.
        """
        outcome, _ = self._replica.check(
            e164,
            numbers,
            self._region if region is None else validate_region(region),
            self._lists if lists is None else tuple(lists),
            self._normalizer,
            policy=policy,
        )
        return outcome

    def check_one(self, e164: int) -> Verdict:
        """One number, as an E.164 integer, against the default lists: the fast path.

        The same answer ``check(e164=[e164]).verdicts[0]`` gives; with policies
        it is that call.

        Raises:
            NotReadyError: as :meth:`check`.
        """
        if self._policies:
            return Verdict(self.check([e164]).verdicts[0])
        # Replica.check_one, without building its outcome: that doubled this call's time.
        view, freshness = self._replica.answering_view()
        return decide_one(e164, view.select(self._lists)[1], freshness.fail_closed)[0]

    def is_allowed(self, e164: int) -> bool:
        """``check_one(e164) is Verdict.ALLOWED``: may this number be dialed now?"""
        return self.check_one(e164) is Verdict.ALLOWED
