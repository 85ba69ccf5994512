"""Configuration: one frozen dataclass; every field is a flag and a SUPPRESSION_* variable.

Precedence: command-line flag, then environment variable, then the default.
Nothing else in the package reads the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from suppression.errors import ConfigError
from suppression.targets import normalize_target

__all__ = ["ENV_PREFIX", "Settings", "add_arguments", "option_table", "settings_from_args"]

ENV_PREFIX = "SUPPRESSION_"


def _opt(
    default: Any,
    help_text: str,
    *commands: str,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> Any:
    """A Settings field with its help, its commands and the values it accepts.

    ``choices`` lists the accepted strings (compared case-insensitively, stored as
    written in ``choices``; an empty string always means "not given"); ``minimum``
    and ``maximum`` bound a number inclusively, ``above`` exclusively.
    """
    return field(
        default=default,
        metadata={
            "help": help_text,
            "commands": commands,
            "metavar": metavar,
            "choices": choices,
            "minimum": minimum,
            "maximum": maximum,
            "above": above,
        },
    )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LIST_KINDS = ("registry", "opt_out", "campaign")
"""The values of :class:`suppression.lists.ListKind` (a test keeps them equal)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every option of the ``suppression`` command, documented in place."""

    host: str = _opt(
        "localhost",
        "address to bind the gRPC server and /metrics to; a non-loopback address ([::], "
        "0.0.0.0, a name) needs TLS and --trust-file, or --insecure",
        "serve",
    )
    port: int = _opt(
        50051, "gRPC port (0-65535; 0 picks a free one)", "serve", minimum=0, maximum=65535
    )
    metrics_port: int = _opt(
        9464,
        "port for Prometheus /metrics, bound to --host (0-65535); 0 turns it off",
        "serve",
        minimum=0,
        maximum=65535,
    )
    data_dir: Path | None = _opt(
        None,
        "directory of snapshot files; the newest is loaded",
        "serve",
        "check",
        "scrub",
        "import",
        "publish",
        "compact",
        "reseed",
        "explain",
        "evidence",
        metavar="DIR",
    )
    list: tuple[str, ...] = _opt(
        (),
        "load a plain number file as a list: NAME=FILE or NAME:KIND=FILE, KIND one of "
        "registry, opt_out, campaign (default opt_out); repeatable, comma-separated in the "
        "environment",
        "serve",
        "check",
        "scrub",
        metavar="NAME=FILE",
    )
    region: str = _opt(
        "",
        "default region (ISO code such as US, CN) for national number forms",
        "serve",
        "check",
        "scrub",
        "import",
        "publish",
        "explain",
        "evidence",
    )
    skip_invalid: bool = _opt(
        False,
        "load number files even if some lines are not numbers (they are reported)",
        "serve",
        "import",
    )
    default_lists: tuple[str, ...] = _opt(
        (), "lists checked when a request names none; empty means all lists", "serve"
    )
    max_batch: int = _opt(
        100_000, "largest batch of numbers one Check may carry (at least 1)", "serve", minimum=1
    )
    workers: int = _opt(
        1,
        "server processes sharing the port (SO_REUSEPORT); use one per core (at least 1)",
        "serve",
        minimum=1,
    )
    bulk_port: int = _opt(
        0,
        "serve batches of --bulk-threshold numbers or more on this port, in their own "
        "processes (--bulk-workers), so they never slow single-number checks; the main "
        "port then refuses them with FAILED_PRECONDITION naming this port. 0: no bulk "
        "port, big batches share the main port's processes",
        "serve",
        minimum=0,
        maximum=65535,
    )
    bulk_workers: int = _opt(
        1, "processes serving --bulk-port, beside the --workers (at least 1)", "serve", minimum=1
    )
    bulk_threshold: int = _opt(
        1_000,
        "a batch of at least this many numbers is bulk work: computed one at a time and "
        "in slices that let single-number checks go first, and sent to --bulk-port when "
        "there is one (at least 1)",
        "serve",
        minimum=1,
    )
    threads: int = _opt(16, "gRPC worker threads per process (at least 1)", "serve", minimum=1)
    parse_cache_size: int = _opt(
        200_000,
        "loose-format parse results kept per process (LRU); 0 turns the cache off",
        "serve",
        "scrub",
        minimum=0,
    )
    max_connection_age: float = _opt(
        300.0,
        "seconds before a client connection is asked to reconnect, so load rebalances "
        "across replicas (above 0)",
        "serve",
        above=0,
    )
    grace: float = _opt(
        10.0, "seconds in-flight calls get to finish on SIGTERM (0 or more)", "serve", minimum=0
    )
    log_level: str = _opt(
        "INFO",
        "least severe level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL",
        "serve",
        "check",
        "scrub",
        "import",
        "publish",
        "compact",
        "reseed",
        "explain",
        "evidence",
        metavar="LEVEL",
        choices=LOG_LEVELS,
    )
    log_format: str = _opt(
        "text",
        "text, or json for one JSON object per stderr line",
        "serve",
        "check",
        "scrub",
        "import",
        "publish",
        "compact",
        "reseed",
        "explain",
        "evidence",
        metavar="FORMAT",
        choices=("text", "json"),
    )
    target: tuple[str, ...] = _opt(
        (),
        "server(s) to ask, HOST[:PORT] or [IPv6][:PORT], port 50051 when not given; without "
        "it, check and scrub read --data-dir locally",
        "check",
        "scrub",
        metavar="HOST:PORT",
    )
    lists: tuple[str, ...] = _opt(
        (), "lists to check; empty means the server's default lists", "check", "scrub"
    )
    policy_file: Path | None = _opt(
        None,
        "TOML file of pre-dial policies (docs/policy.md): lists, exemptions, calling windows, "
        "attempt caps, number types; every check is then decided under a policy; serve "
        "re-reads it on SIGHUP and keeps the old policies if the new file is bad; a local "
        "scrub decides every row under it and writes NAME.deferred",
        "serve",
        "check",
        "explain",
        "evidence",
        "scrub",
        metavar="FILE",
    )
    dated_list: tuple[str, ...] = _opt(
        (),
        "load a dated list for --policy-file: NAME=FILE, a CSV with a number and a date "
        "(YYYY-MM-DD) column, such as consents with their day or disconnected numbers with "
        "theirs; re-read with the policy file on SIGHUP; repeatable, comma-separated in the "
        "environment",
        "serve",
        "check",
        "explain",
        "evidence",
        "scrub",
        metavar="NAME=FILE",
    )
    policy: str = _opt(
        "",
        "the policy of --policy-file to decide under; empty means its default; with "
        "--target, the server's policy (a scrub then decides under it, for one instant)",
        "check",
        "explain",
        "evidence",
        "scrub",
    )
    decide_at: str = _opt(
        "",
        "decide for this time (ISO 8601 with an offset, such as 2026-11-26T09:00-05:00) "
        "instead of now; needs --policy-file, or --target a server with one; a scrub "
        "decides every row for one instant, by default its start (kept by --resume)",
        "check",
        "scrub",
        metavar="TIME",
    )
    consent_date: str = _opt(
        "",
        "the day consent was obtained (YYYY-MM-DD), for the reassigned-number check of the "
        "policy; needs --policy-file",
        "check",
        "explain",
        "evidence",
        metavar="DATE",
    )
    calling_line: str = _opt(
        "",
        "the calling line (caller ID or SIM) the numbers would be dialed from, for the "
        "policy's line caps; needs --policy-file",
        "check",
        "explain",
        "evidence",
        metavar="LINE",
    )
    timeout: float = _opt(
        10.0, "seconds to wait for a server's answer (above 0)", "check", "scrub", above=0
    )
    output: str = _opt(
        "table",
        "check's and explain's output: table or json (explain also takes --json)",
        "check",
        "explain",
        metavar="FORMAT",
        choices=("table", "json"),
    )
    encoding: str = _opt(
        "",
        "the lead file's encoding (utf-8, utf-8-sig, gbk, gb18030...); empty detects "
        "UTF-8 with or without BOM and GB18030",
        "scrub",
    )
    delimiter: str = _opt(
        "",
        "field delimiter: one character or 'tab'; empty detects it from the extension and header",
        "scrub",
    )
    output_dir: Path | None = _opt(
        None, "where scrub writes its outputs; none means beside the input", "scrub", metavar="DIR"
    )
    processes: int = _opt(
        0,
        "scrub: processes that read the file's blocks and check their numbers (local) or "
        "read them into numbers to send (remote); 0 means one per core",
        "scrub",
        minimum=0,
    )
    batch_size: int = _opt(
        10_000,
        "numbers per batch, for a server's CheckStream or a local worker (at least 1)",
        "scrub",
        minimum=1,
    )
    chunk_rows: int = _opt(
        100_000,
        "scrub: input lines read, checked, written and checkpointed at a time (at least 1); "
        "memory grows with it",
        "scrub",
        minimum=1,
    )
    resume: bool = _opt(
        False,
        "scrub: continue an interrupted scrub of the same file, with the same options, from "
        "its last checkpoint (starts afresh when there is none)",
        "scrub",
    )
    no_header: bool = _opt(
        False,
        "scrub: the file has no header row; --column is then a 1-based position (or detected "
        "by content), and the outputs have no header either",
        "scrub",
    )
    compress: bool = _opt(
        False,
        "scrub: write the row files (clean, suppressed, invalid, deferred) gzip-compressed (.gz)",
        "scrub",
    )
    dedupe: bool = _opt(
        False,
        "scrub: write each distinct number once, keeping its first row; the summary counts "
        "the rows left out",
        "scrub",
    )
    redis_url: str = _opt(
        "",
        "Redis URL of the change log (redis://host:6379/0); none means no live changes, and "
        "Suppress and Release are refused",
        "serve",
        "import",
        "publish",
        "compact",
        "reseed",
        metavar="URL",
    )
    sentinel: tuple[str, ...] = _opt(
        (),
        "Redis Sentinel HOST:PORT to ask for the change log's primary (repeat or separate with "
        "commas); replicas and writers then follow a failover without a restart, and "
        "--redis-url gives only the database and password (redis://:PASSWORD@MASTER/0)",
        "serve",
        "import",
        "publish",
        "compact",
        "reseed",
        metavar="HOST:PORT",
    )
    sentinel_master: str = _opt(
        "",
        "the master name the sentinels monitor (with --sentinel)",
        "serve",
        "import",
        "publish",
        "compact",
        "reseed",
        metavar="NAME",
    )
    stream: str = _opt(
        "suppression:deltas",
        "Redis stream key of the change log",
        "serve",
        "import",
        "publish",
        "compact",
        "reseed",
        metavar="KEY",
    )
    dead_letter_stream: str = _opt(
        "suppression:deltas:dead",
        "Redis stream that receives change-log entries that cannot be applied, with the reason",
        "serve",
        metavar="KEY",
    )
    max_staleness: float = _opt(
        10.0,
        "seconds without confirming the data is caught up with the change log before answers "
        "are marked stale (above 0)",
        "serve",
        above=0,
    )
    fail_closed: bool = _opt(
        False, "answer every number SUPPRESSED (reason stale) while the data is stale", "serve"
    )
    snapshot_interval: float = _opt(
        300.0,
        "seconds between snapshots written into --data-dir while following the change log; "
        "0 turns them off",
        "serve",
        minimum=0,
    )
    snapshot_keep: int = _opt(
        3,
        "snapshots kept in --data-dir when writing a new one; older ones are deleted (at least 1)",
        "serve",
        "compact",
        minimum=1,
    )
    at: str = _opt(
        "",
        "explain, evidence: the point in time asked about, ISO 8601 (UTC unless it says "
        "otherwise, 2026-11-24T15:04:05Z) or milliseconds since the epoch; or give --version",
        "explain",
        "evidence",
        metavar="TIME",
    )
    at_version: str = _opt(
        "",
        "explain, evidence: the data version asked about (<milliseconds>-<sequence>, as every "
        "answer carries it); also --version; or give --at",
        "explain",
        "evidence",
        metavar="VERSION",
    )
    show_number: bool = _opt(
        False,
        "explain, evidence: show the full number in the output and the report (masked unless "
        "given)",
        "explain",
        "evidence",
    )
    out: Path | None = _opt(
        None,
        "evidence: the directory the report files are written into (created if missing)",
        "evidence",
        metavar="DIR",
    )
    no_archive: bool = _opt(
        False,
        "do not keep applied changes in the change archive (by default the replica that writes "
        "snapshots archives every change it applies; see docs/evidence.md)",
        "serve",
    )
    archive_dir: Path | None = _opt(
        None,
        "directory of the change archive; default archive/ in --data-dir",
        "serve",
        "check",
        "explain",
        "evidence",
        "scrub",
    )
    as_of: str = _opt(
        "",
        "scrub against the lists as they stood at this earlier version (MS-SEQ) or time "
        "(ISO 8601 with an offset, or milliseconds): rebuilt from the newest snapshot before "
        "it plus the change archive (--archive-dir, or archive/ in --data-dir); an audit "
        "re-check; local mode only, and not with --list files, which have no history",
        "scrub",
        metavar="VERSION|TIME",
    )
    archive_segment_bytes: int = _opt(
        64 * 1024 * 1024,
        "bytes after which an archive segment is closed and the next one started",
        "serve",
        minimum=1,
    )
    archive_retention_days: float = _opt(
        0.0,
        "days of changes the archive keeps; older closed segments are deleted once a later "
        "checkpoint backs them. 0 keeps everything",
        "serve",
        minimum=0,
    )
    archive_no_fsync: bool = _opt(
        False,
        "do not fsync each archived batch (a kill -9 still loses nothing; a power cut may lose "
        "the last batches)",
        "serve",
    )
    write_timeout: float = _opt(
        5.0,
        "seconds Suppress and Release wait for this replica to apply the change (above 0)",
        "serve",
        above=0,
    )
    min_replicas: int = _opt(
        0,
        "Redis replicas that must hold a change (Redis WAIT) before Suppress, Release or the "
        "loader count it as written; fewer within --replica-timeout fails the write, so no "
        "acknowledged change is lost in a failover. 0 trusts the primary alone",
        "serve",
        "import",
        "publish",
        minimum=0,
    )
    replica_timeout: float = _opt(
        1.0,
        "seconds a write waits for --min-replicas Redis replicas to confirm it (above 0)",
        "serve",
        "import",
        "publish",
        above=0,
    )
    peer: tuple[str, ...] = _opt(
        (),
        "running replicas (HOST:PORT, repeat or separate with commas) to fetch the newest "
        "snapshot from when --data-dir holds none: a new replica needs no shared volume",
        "serve",
        "compact",
        metavar="HOST:PORT",
    )
    peer_token_file: Path | None = _opt(
        None,
        "file holding a bearer token with the admin scope, for --peer replicas that "
        "require authentication",
        "serve",
        "compact",
        metavar="FILE",
    )
    trim_min_age: float = _opt(
        0.0,
        "compact trims no entry younger than this many seconds: replicas that write their own "
        "snapshots (no shared volume) replay from them, so give twice their "
        "--snapshot-interval; 0 trims up to the new snapshot",
        "compact",
        minimum=0,
    )
    list_name: str = _opt(
        "", "the list that import and publish change", "import", "publish", metavar="NAME"
    )
    kind: str = _opt(
        "",
        "the list's kind: registry, opt_out or campaign (import default registry, publish "
        "default opt_out)",
        "import",
        "publish",
        choices=LIST_KINDS,
    )
    source: str = _opt(
        "",
        "where the change comes from: in_call, sms_reply, app, customer_service, registry, "
        "complaint, consent, ... (import default registry)",
        "import",
        "publish",
    )
    actor: str = _opt("", "who records the change (agent id, system name)", "import", "publish")
    evidence: str = _opt(
        "",
        "evidence reference (recording id, SMS id, ticket); removing from an opt-out list needs "
        "source consent and evidence",
        "import",
        "publish",
    )
    input_format: str = _opt(
        "auto",
        "import's file format: auto, ten_digit (US registry: ten digits or AAA,NNNNNNN), csv "
        "or plain (any number format)",
        "import",
        metavar="FORMAT",
        choices=("auto", "ten_digit", "csv", "plain"),
    )
    column: str = _opt(
        "",
        "the CSV column that holds the numbers, by header name; scrub also takes a 1-based "
        "position, and without one detects it (phone, mobile, 手机号... or by content)",
        "import",
        "scrub",
        metavar="NAME",
    )
    changes: bool = _opt(
        False,
        "import a registry change file (A or D, then the number, per line) and publish it",
        "import",
    )
    with_dates: bool = _opt(
        False,
        "import and publish add read CSV files with a number and a date column (YYYY-MM-DD; "
        "the --dated-list format) and write each number's day with it (a dated list); "
        "publish add then takes files, not numbers",
        "import",
        "publish",
    )
    create_list: bool = _opt(
        False,
        "let import and publish create --list-name, of kind --kind, when it does not exist "
        "yet; without it a list name that is not in the current state is refused",
        "import",
        "publish",
    )
    tls_cert: Path | None = _opt(
        None,
        "PEM certificate chain of the gRPC server; with --tls-key turns TLS on; re-read when "
        "the file changes",
        "serve",
        metavar="FILE",
    )
    tls_key: Path | None = _opt(None, "PEM private key of --tls-cert", "serve", metavar="FILE")
    tls_client_ca: Path | None = _opt(
        None,
        "PEM CA of client certificates; turns on mutual TLS: every client must present a "
        "certificate it signed",
        "serve",
        metavar="FILE",
    )
    trust_file: Path | None = _opt(
        None,
        "TOML file of identities (tokens, certificates), scopes, tenants and quotas "
        "(docs/security.md); turns authentication on; re-read when it changes",
        "serve",
        metavar="FILE",
    )
    quota_dir: Path | None = _opt(
        None,
        "directory of the quota table that every worker process shares; none means /dev/shm "
        "where it exists, else the temporary directory",
        "serve",
        metavar="DIR",
    )
    web_config_file: Path | None = _opt(
        None,
        "Prometheus web-config file (tls_server_config, basic_auth_users) for /metrics",
        "serve",
        metavar="FILE",
    )
    insecure: bool = _opt(
        False,
        "serve a non-loopback address without TLS and authentication (refused otherwise)",
        "serve",
    )
    force: bool = _opt(
        False,
        "reseed even though the change log still has an epoch: only when replicas report that "
        "the log went backwards (a failover lost entries)",
        "reseed",
    )
    snapshot_key_file: Path | None = _opt(
        None,
        "file holding the secret key (at least 32 bytes; one per line, the first signs, every "
        "one verifies) that signs every snapshot written and must have signed every snapshot "
        "read; not readable by others. Without it snapshots are unsigned and signatures are not "
        "checked. See docs/operations.md",
        "serve",
        "check",
        "scrub",
        "import",
        "publish",
        "compact",
        "reseed",
        "explain",
        "evidence",
        metavar="PATH",
    )
    max_streams: int = _opt(
        0,
        "streaming calls (CheckStream) one process runs at once; a stream beyond it is refused "
        "with RESOURCE_EXHAUSTED, so idle or slow streams never hold every thread. 0: half of "
        "--threads. At most --threads minus 1",
        "serve",
        minimum=0,
    )

    def __post_init__(self) -> None:
        """Check every value and bring choices and targets to their canonical form.

        Raises:
            ConfigError: a value is out of range, not one of its choices, or malformed.
        """
        for spec in fields(self):
            value = getattr(self, spec.name)
            checked = _checked(spec, value, _flag(spec.name))
            if checked is not value:
                object.__setattr__(self, spec.name, checked)
        object.__setattr__(self, "target", tuple(normalize_target(t) for t in self.target))
        if self.redis_url:
            _check_redis_url(self.redis_url)
        if self.sentinel:
            _check_sentinels(self.sentinel, self.sentinel_master, self.redis_url)
        for name in ("stream", "dead_letter_stream"):
            if not getattr(self, name).strip():
                raise ConfigError(f"{_flag(name)} is empty: name a Redis stream key")
        if self.dead_letter_stream == self.stream:
            raise ConfigError(
                f"--dead-letter-stream and --stream are both {self.stream!r}: entries that "
                "cannot be applied would be appended to the change log itself; use another key"
            )
        if self.max_streams >= self.threads:
            raise ConfigError(
                f"--max-streams {self.max_streams} leaves none of the {self.threads} --threads "
                "for unary calls; give fewer streams or more threads"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("give --tls-cert and --tls-key together, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca needs TLS: give --tls-cert and --tls-key too")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from SUPPRESSION_* variables, then ``overrides``.

        Args:
            env: the environment to read (``os.environ`` when None).
            overrides: field values that win over the environment.

        Raises:
            ConfigError: a variable has a value of the wrong type.
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = ENV_PREFIX + spec.name.upper()
            if name in source and spec.name not in overrides:
                # Checked here too, so that the message names the variable, not the flag.
                values[spec.name] = _checked(spec, _convert(spec, source[name], name), name)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _field_type(spec: dataclasses.Field[Any]) -> str:
    return str(spec.type)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _checked(spec: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    """``value`` if it is acceptable for ``spec`` (choices in their canonical case).

    Raises:
        ConfigError: naming ``origin`` (a flag or a variable), the value and what is accepted.
    """
    meta = spec.metadata
    choices: tuple[str, ...] = meta["choices"]
    if choices and value == "":
        return spec.default
    if choices and isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice if choice != value else value
        raise ConfigError(f"{origin} {value!r}: use one of {', '.join(choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high, above = meta["minimum"], meta["maximum"], meta["above"]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{origin} {value!r}: give a finite number")
        if low is not None and value < low or high is not None and value > high:
            span = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise ConfigError(f"{origin} {value!r}: must be {span}")
        if above is not None and value <= above:
            raise ConfigError(f"{origin} {value!r}: must be above {above}")
    return value


def _check_redis_url(url: str) -> None:
    """Refuse a Redis URL that redis-py would reject, or misread, only when it connects."""
    # Imported here: redis is a dependency of the serving and loading commands only.
    from redis.connection import parse_url

    shown = re.sub(r"//[^@/]*@", "//***@", url)  # never echo a password
    try:
        parsed = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(
            f"--redis-url {shown!r} is not a Redis URL ({exc}); write redis://HOST:PORT/DB, "
            "rediss://... or unix:///PATH"
        ) from None
    if not url.startswith("unix://"):
        path = url.split("?", 1)[0].split("://", 1)[1].partition("/")[2]
        if path and not path.isdigit():
            raise ConfigError(
                f"--redis-url {shown!r}: the database after the host must be a number, "
                "as in redis://HOST:6379/0"
            )
        if not parsed.get("host"):
            raise ConfigError(f"--redis-url {shown!r} names no host: write redis://HOST:PORT/DB")


def _check_sentinels(addresses: Sequence[str], master: str, url: str) -> None:
    """Refuse Sentinel settings that cannot name a primary."""
    # Imported here: redis is a dependency of the serving and loading commands only.
    from suppression.redisconn import parse_sentinel

    for address in addresses:
        parse_sentinel(address)
    if not master:
        raise ConfigError("--sentinel needs --sentinel-master: the name the sentinels monitor")
    if not url:
        raise ConfigError(
            "--sentinel needs --redis-url too, for the database and password: "
            f"redis://{master}/0 (the host is ignored: the sentinels name the primary)"
        )


def _convert(spec: dataclasses.Field[Any], raw: str, origin: str) -> Any:
    kind = _field_type(spec)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind.startswith("tuple"):
            return split_sequence([raw])
        if kind.startswith("Path"):
            return Path(raw) if raw else None
        return raw
    except ValueError as exc:
        raise ConfigError(f"{origin}={raw!r} is not a valid {kind}") from exc


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add a flag for every Settings field that ``command`` uses.

    Flags default to None so that an absent flag leaves the environment's value.
    """
    for spec in fields(Settings):
        if command not in spec.metadata["commands"]:
            continue
        flag = "--" + spec.name.replace("_", "-")
        env_name = ENV_PREFIX + spec.name.upper()
        help_text = f"{spec.metadata['help']} (env {env_name}; default {_shown_default(spec)})"
        kind = _field_type(spec)
        if kind == "bool":
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        elif kind.startswith("tuple"):
            parser.add_argument(
                flag,
                action="append",
                default=None,
                metavar=spec.metadata["metavar"] or spec.name.upper(),
                help=help_text,
            )
        elif spec.metadata["choices"]:
            choices = spec.metadata["choices"]
            parser.add_argument(
                flag, type=_choice(choices), choices=choices, default=None, help=help_text
            )
        else:
            converter = {"int": int, "float": float}.get(kind, str)
            if kind.startswith("Path"):
                converter = Path
            parser.add_argument(
                flag,
                type=converter,
                default=None,
                metavar=spec.metadata["metavar"] or spec.name.upper(),
                help=help_text,
            )


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type that accepts a choice in any letter case."""
    canonical = {choice.lower(): choice for choice in choices}

    def convert(text: str) -> str:
        return canonical.get(text.strip().lower(), text)

    return convert


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from parsed flags over the environment."""
    overrides: dict[str, Any] = {}
    for spec in fields(Settings):
        value = getattr(args, spec.name, None)
        if value is None:
            continue
        if _field_type(spec).startswith("tuple"):
            value = split_sequence(value)
        overrides[spec.name] = value
    return Settings.from_env(env, **overrides)


def _shown_default(spec: dataclasses.Field[Any]) -> str:
    value = spec.default
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "off" if not value else "on"
    if value == "":
        return "none"
    return str(value)


def option_table() -> str:
    """The README's option table, generated so it cannot drift from the code."""
    rows = [
        "| Flag | Environment variable | Commands | Default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in fields(Settings):
        flag = "--" + spec.name.replace("_", "-")
        commands = ", ".join(spec.metadata["commands"])
        rows.append(
            f"| `{flag}` | `{ENV_PREFIX}{spec.name.upper()}` | {commands} | "
            f"{_shown_default(spec)} | {spec.metadata['help']} |"
        )
    return "\n".join(rows)


def split_sequence(values: Sequence[str]) -> tuple[str, ...]:
    """Flatten comma-separated items."""
    return tuple(part.strip() for item in values for part in item.split(",") if part.strip())


if __name__ == "__main__":
    print(option_table())
