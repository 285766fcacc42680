"""Fixtures for the webhook tests: a profiles file of their own and an app serving it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.webhook.helpers import PROFILES_FILE
from webhook.app import create_app
from webhook.config import WebhookConfig


@pytest.fixture
def profiles_file(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.yaml"
    shutil.copyfile(PROFILES_FILE, path)
    return path


@pytest.fixture
def app(profiles_file: Path) -> Flask:
    # No watcher thread: the tests call store.check() when they want a reload.
    return create_app(WebhookConfig(profiles=profiles_file, profile_poll_seconds=0))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
