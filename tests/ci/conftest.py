from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from tests.ci.fake_github import FakeGitHub


@pytest.fixture
def github(httpserver: HTTPServer) -> FakeGitHub:
    return FakeGitHub(httpserver).install()
