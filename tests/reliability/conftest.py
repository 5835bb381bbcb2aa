"""The private stack every fault scenario runs on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.services import PostgresCluster, RedisServer, Stack, open_stack


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Stack, PostgresCluster, RedisServer]]:
    with open_stack(tmp_path) as running:
        yield running
