"""/metrics behind a Prometheus web-config file: TLS, mTLS, basic auth, reloads, refusals."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from suppression.errors import ConfigError
from suppression.webconfig import MetricsServer, load_web_config, parse_web_config
from tests.certs import Pem, make_ca, make_cert, replace_file, server_cert

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pem]:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "ca")
    other_ca = make_ca(directory, "other-ca")
    return {
        "ca": ca,
        "other_ca": other_ca,
        "server": server_cert(directory, ca),
        "server2": server_cert(directory, other_ca, "server2"),
        "prometheus": make_cert(directory, ca, "prometheus", ("DNS:prometheus.example",)),
        "intruder": make_cert(directory, ca, "intruder", ("DNS:intruder.example",)),
        "rogue": make_cert(directory, other_ca, "rogue", ("DNS:prometheus.example",)),
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("trust_probe", "A metric to find in the scrape.", registry=registry).inc()
    return registry


def _write(path: Path, text: str) -> Path:
    staging = path.with_suffix(".new")
    staging.write_text(text)
    os.replace(staging, path)
    return path


def _tls_files(tmp_path: Path, server: Pem, ca: Pem | None = None) -> None:
    replace_file(server.cert, tmp_path / "metrics.crt")
    replace_file(server.key, tmp_path / "metrics.key")
    if ca is not None:
        replace_file(ca.cert, tmp_path / "clients-ca.crt")


def _client(ca: Pem, client: Pem | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def _get(
    url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[object]:
    started: list[MetricsServer] = []

    def start(web_config: Path | None) -> MetricsServer:
        server = MetricsServer(registry, 0, host="127.0.0.1", web_config=web_config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- the file ------------------------------------------------------------------------


def test_parses_the_exporter_toolkit_format(tmp_path: Path) -> None:
    config = parse_web_config(
        {
            "tls_server_config": {
                "cert_file": "metrics.crt",
                "key_file": "/abs/metrics.key",
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": "ca.crt",
                "client_allowed_sans": ["prometheus.example"],
                "min_version": "TLS13",
            },
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
            "basic_auth_users": {},
        },
        tmp_path,
    )
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "metrics.crt"
    assert config.tls.key_file == Path("/abs/metrics.key")
    assert config.tls.client_ca_file == tmp_path / "ca.crt"
    assert config.tls.min_version is ssl.TLSVersion.TLSv1_3
    assert config.headers == {"X-Frame-Options": "deny"}
    assert parse_web_config(None, tmp_path).tls is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tls_config": {}}, "unknown key 'tls_config'"),
        ({"tls_server_config": {"cert_file": "a"}}, "needs both cert_file and key_file"),
        ({"tls_server_config": {"cert": "PEM", "key_file": "k"}}, "write it to a file"),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": []}},
            "cipher_suites is not supported",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequestClientCert",
                }
            },
            "use RequireAndVerifyClientCert",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "needs client_ca_file",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_allowed_sans": ["x"],
                }
            },
            "needs client_auth_type RequireAndVerifyClientCert",
        ),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "min_version": "SSL3"}},
            "min_version must be one of",
        ),
        ({"basic_auth_users": {"alice": "plaintext"}}, "not a bcrypt hash"),
        ({"rate_limit": {"burst": 1}}, "unknown key 'rate_limit'"),
    ],
)
def test_file_errors_say_what_to_fix(tmp_path: Path, data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_web_config(data, tmp_path)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(tmp_path / "absent.yml")
    broken = _write(tmp_path / "web.yml", "tls_server_config: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_web_config(broken)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )


def test_without_bcrypt_basic_auth_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = _write(tmp_path / "web.yml", "basic_auth_users:\n  alice: '$2b$04$" + "a" * 53 + "'\n")
    result = _run(
        "import sys; sys.modules['bcrypt'] = None\n"
        "from pathlib import Path\n"
        "from suppression.webconfig import load_web_config\n"
        "from suppression.errors import ConfigError\n"
        f"try:\n    load_web_config(Path({str(path)!r}))\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    assert "needs the bcrypt package" in result.stdout
    assert "pip install bcrypt" in result.stdout


def test_without_pyyaml_a_json_file_still_works(tmp_path: Path) -> None:
    path = _write(tmp_path / "web.json", json.dumps({"http_server_config": {"headers": {}}}))
    yaml_only = _write(tmp_path / "web.yml", "http_server_config:\n  headers: {}\n")
    result = _run(
        "import sys; sys.modules['yaml'] = None\n"
        "from pathlib import Path\n"
        "from suppression.webconfig import load_web_config\n"
        "from suppression.errors import ConfigError\n"
        f"print(load_web_config(Path({str(path)!r})).tls)\n"
        f"try:\n    load_web_config(Path({str(yaml_only)!r}))\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    assert result.stdout.splitlines()[0] == "None"
    assert "needs PyYAML" in result.stdout


# -- serving -------------------------------------------------------------------------


def test_plain_http_without_a_config(serve: object) -> None:
    assert callable(serve)
    server = serve(None)
    status, body, _ = _get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200 and "trust_probe_total 1.0" in body


def test_tls_with_headers(tmp_path: Path, pki: dict[str, Pem], serve: object) -> None:
    assert callable(serve)
    _tls_files(tmp_path, pki["server"])
    web = _write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=60\n",
    )
    server = serve(web)
    status, body, headers = _get(f"https://localhost:{server.port}/metrics", _client(pki["ca"]))
    assert status == 200 and "trust_probe_total" in body
    assert headers["Strict-Transport-Security"] == "max-age=60"
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        _get(f"http://127.0.0.1:{server.port}/metrics")


def test_certificates_reload_on_the_next_request(
    tmp_path: Path, pki: dict[str, Pem], serve: object
) -> None:
    assert callable(serve)
    _tls_files(tmp_path, pki["server"])
    web = _write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n",
    )
    server = serve(web)
    url = f"https://localhost:{server.port}/metrics"
    assert _get(url, _client(pki["ca"]))[0] == 200
    _tls_files(tmp_path, pki["server2"])
    assert _get(url, _client(pki["other_ca"]))[0] == 200
    with pytest.raises(urllib.error.URLError):
        _get(url, _client(pki["ca"]))


def test_mutual_tls_and_allowed_sans(tmp_path: Path, pki: dict[str, Pem], serve: object) -> None:
    assert callable(serve)
    _tls_files(tmp_path, pki["server"], ca=pki["ca"])
    web = _write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.crt\n"
        "  client_allowed_sans: [prometheus.example]\n",
    )
    server = serve(web)
    url = f"https://localhost:{server.port}/metrics"
    assert _get(url, _client(pki["ca"], pki["prometheus"]))[0] == 200
    for client in (None, pki["rogue"], pki["intruder"]):
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _get(url, _client(pki["ca"], client))


def test_a_broken_edit_keeps_the_previous_config(
    tmp_path: Path, pki: dict[str, Pem], serve: object
) -> None:
    assert callable(serve)
    _tls_files(tmp_path, pki["server"])
    text = "tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"
    web = _write(tmp_path / "web.yml", text)
    server = serve(web)
    url = f"https://localhost:{server.port}/metrics"
    _write(web, text + "  surprise: 1\n")
    assert _get(url, _client(pki["ca"]))[0] == 200
    assert server.reload_failures == 1
    _write(web, "{}\n")
    assert _get(url, _client(pki["ca"]))[0] == 200, "turning TLS off takes a restart"
    assert server.reload_failures == 2


def test_basic_auth_with_bcrypt_hashes(tmp_path: Path, serve: object) -> None:
    assert callable(serve)
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = _write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = serve(web)
    url = f"http://127.0.0.1:{server.port}/metrics"
    status, body, headers = _get(url)
    assert status == 401 and "basic_auth_users" in body
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert _get(url, auth=("prometheus", "wrong"))[0] == 401
    assert _get(url, auth=("nobody", "s3cret"))[0] == 401
    assert _get(url, auth=("prometheus", "s3cret"))[0] == 200
    assert _get(url, auth=("prometheus", "s3cret"))[0] == 200, "cached"
    # A changed password applies at once; the old one no longer works.
    new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(rounds=4)).decode()
    _write(web, f"basic_auth_users:\n  prometheus: '{new_hash}'\n")
    assert _get(url, auth=("prometheus", "s3cret"))[0] == 401
    assert _get(url, auth=("prometheus", "rotated"))[0] == 200
