"""The committed gammatone fixtures must be what tests/reference/gammatone_reference.py makes.

Re-runs the reference computation in memory (nothing is written) and compares:
the regenerated signal with tests/fixtures/reference_signal.wav, and the whole JSON
document with tests/fixtures/gammatone_reference.json. Floats are compared to 1e-9
relative, so only last-bit differences between NumPy/SciPy builds are tolerated;
anything else means the fixture drifted: regenerate it on purpose and commit both files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tests" / "reference" / "gammatone_reference.py"
REGENERATE = "Regenerate with `.venv/bin/python tests/reference/gammatone_reference.py` if the change is intended."


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("gammatone_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in (module.WAV_PATH, module.JSON_PATH):
        if not path.is_file():
            pytest.fail(f"missing fixture {path}. {REGENERATE}", pytrace=False)
    return module


def assert_same(actual, expected, path="$"):
    """Structural equality; floats to rel 1e-9 (abs 1e-9 near zero); ints, strings, keys exact."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, (float, int)), f"{path}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {actual!r} != {expected!r}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{path}: {actual!r} != {expected!r}"


def test_signal_matches_committed_wav(ref):
    committed, rate = ref.read_wav_float32_mono(ref.WAV_PATH)
    assert rate == ref.SIGNAL_SAMPLE_RATE
    regenerated = ref.make_reference_signal()
    assert regenerated.dtype == np.float32 and committed.shape == regenerated.shape == (48000,)
    # The noise is integer-exact; the tones use np.sin, which may differ in the last bit.
    np.testing.assert_array_max_ulp(regenerated, committed, maxulp=1)
    assert ref.wav_bytes_float32_mono(committed, rate) == ref.WAV_PATH.read_bytes(), "WAV layout changed"


def test_json_matches_recomputation(ref):
    committed = json.loads(ref.JSON_PATH.read_text())
    wav = ref.WAV_PATH.read_bytes()
    assert committed["signal"]["sha256"] == hashlib.sha256(wav).hexdigest(), f"WAV changed. {REGENERATE}"
    signal, _ = ref.read_wav_float32_mono(ref.WAV_PATH)
    recomputed = json.loads(ref.to_json(ref.build_reference(signal, hashlib.sha256(wav).hexdigest())))
    assert_same(recomputed, committed)


def test_reference_is_sane(ref):
    """Cheap independent checks of what the fixture claims."""
    doc = json.loads(ref.JSON_PATH.read_text())
    assert doc["package"]["version"] == "1.0.3"
    by_key = {(c["sample_rate"], c["num_bands"]): c for c in doc["configs"]}
    main = by_key[(48000, 100)]
    cfs = np.array(main["centre_freqs_hz"])
    assert len(cfs) == 100 and np.all(np.diff(cfs) < 0), "erb_space order is descending"
    assert cfs[-1] == pytest.approx(50.0) and cfs[0] < 8000.0
    np.testing.assert_allclose(main["erb_hz"], 24.7 * (4.37e-3 * cfs + 1.0), rtol=1e-12)
    np.testing.assert_allclose(main["erb_hz_package"], main["erb_hz"], rtol=1e-6)
    power = main["band_power"]
    assert power["discard_samples"] == 4800 and power["measured_samples"] == 48000 - 4800
    db = np.array(power["power_db"])
    assert db.shape == (100,) and np.all(np.isfinite(db)) and np.all(db > -60.0)
    # The three tones stand out in the bands nearest to them.
    for tone in doc["signal"]["tones_hz"]:
        k = int(np.argmin(np.abs(cfs - tone)))
        assert db[k] > np.median(db) + 10.0, f"no peak near {tone} Hz"
    other = by_key[(44100, 64)]
    assert len(other["centre_freqs_hz"]) == 64 and other["band_power"] is None
