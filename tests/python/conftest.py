"""Shared pytest fixtures for the Python host tests.

The bundles are built by `cargo xtask bundle echoic`. Their folder is taken from the
`ECHOIC_BUNDLE_DIR` environment variable, or `<repo>/target/bundled` by default.

A missing bundle is a test *failure*, never a skip: in CI these tests must run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE_DIR = REPO_ROOT / "target" / "bundled"

# Make `helpers` importable from every test module, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

BUILD_HINT = "Build it with `cargo xtask bundle echoic` (or point ECHOIC_BUNDLE_DIR at the bundles)."


def _bundle_dir() -> Path:
    env = os.environ.get("ECHOIC_BUNDLE_DIR")
    return Path(env).expanduser().resolve() if env else DEFAULT_BUNDLE_DIR


def _require_bundle(path: Path, what: str) -> Path:
    """Fail (not skip) unless `path` exists and holds at least one file."""
    if not path.exists():
        pytest.fail(f"{what} not found at {path}. {BUILD_HINT}", pytrace=False)
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        pytest.fail(f"{what} at {path} is an empty folder. {BUILD_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The folder holding Echoic.vst3 and Echoic.clap."""
    d = _bundle_dir()
    if not d.is_dir():
        pytest.fail(
            f"Echoic bundle folder not found at {d} "
            f"(ECHOIC_BUNDLE_DIR={os.environ.get('ECHOIC_BUNDLE_DIR')!r}). {BUILD_HINT}",
            pytrace=False,
        )
    return d


@pytest.fixture(scope="session")
def vst3_path(bundle_dir: Path) -> str:
    """Path of the Echoic.vst3 bundle, as a string (what the host libraries take)."""
    return str(_require_bundle(bundle_dir / "Echoic.vst3", "Echoic.vst3 bundle"))


@pytest.fixture(scope="session")
def clap_path(bundle_dir: Path) -> str:
    """Path of the Echoic.clap bundle, as a string."""
    return str(_require_bundle(bundle_dir / "Echoic.clap", "Echoic.clap bundle"))
