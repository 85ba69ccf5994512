"""The tests' free ports: never the same one twice in a row, so two listeners cannot collide."""

from __future__ import annotations

from tests.conftest import free_port


def test_free_ports_handed_out_together_are_distinct() -> None:
    # A thousand binds to port 0 repeat a port many times over (birthday odds over the
    # ephemeral range); a server given one port twice exits with "Address already in use".
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
