"""Echoic's VST3 in a real VST3 host: Spotify's pedalboard (JUCE underneath).

Checks the bit-exact passthrough, the parameters the host sees, and the state round trip.
Every test loads its own fresh instance.
"""

from __future__ import annotations

import numpy as np
import pytest
from pedalboard import load_plugin

from helpers import BUFFER_SIZES, SAMPLE_RATES, make_test_signal

# python attribute name -> (display name, unit label, min, max, default, step or None).
# Mirrors plugin/src/params.rs; pedalboard derives the attribute name from name + unit.
EXPECTED_PARAMS = {
    "bands": ("Bands", None, 16.0, 128.0, 100.0, 1.0),
    "lowest_band_hz": ("Lowest band", "Hz", 20.0, 500.0, 50.0, 1.0),
    "highest_band_hz": ("Highest band", "Hz", 2000.0, 20000.0, 8000.0, None),
    "hop_ms": ("Hop", "ms", 5.0, 50.0, 10.0, 0.5),
}


@pytest.fixture
def plugin(vst3_path):
    """A fresh Echoic VST3 instance."""
    p = load_plugin(vst3_path)
    assert p.name == "Echoic"
    return p


def test_is_an_effect(plugin):
    assert plugin.is_effect
    assert not plugin.is_instrument
    assert plugin.reported_latency_samples == 0


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", [2, 1], ids=["stereo", "mono"])
@pytest.mark.parametrize("buffer_size", BUFFER_SIZES)
def test_passthrough_is_bit_exact(plugin, sample_rate, channels, buffer_size):
    audio = make_test_signal(sample_rate, channels)
    before = audio.copy()
    out = plugin.process(audio, sample_rate, buffer_size=buffer_size)
    assert np.array_equal(audio, before), "the host's input array was modified"
    assert out.dtype == np.float32
    assert out.shape == audio.shape
    assert np.array_equal(out, audio), (
        f"output differs from input at {np.count_nonzero(out != audio)} samples, "
        f"max |diff| {np.max(np.abs(out.astype(np.float64) - audio))}"
    )


def test_passthrough_across_consecutive_calls(plugin):
    """Several process calls without a reset in between, switching block size each time."""
    audio = make_test_signal(48000, 2)
    for i, (start, stop, bs) in enumerate([(0, 4800, 256), (4800, 12345, 37), (12345, audio.shape[1], 1024)]):
        chunk = np.ascontiguousarray(audio[:, start:stop])
        out = plugin.process(chunk, 48000, buffer_size=bs, reset=(i == 0))
        assert np.array_equal(out, chunk), f"call {i} is not a bit-exact passthrough"


def test_parameters_are_exposed(plugin):
    assert set(EXPECTED_PARAMS) <= set(plugin.parameters)
    for attr, (name, unit, lo, hi, default, step) in EXPECTED_PARAMS.items():
        prm = plugin.parameters[attr]
        assert prm.name == name
        assert prm.min_value == pytest.approx(lo)
        assert prm.max_value == pytest.approx(hi)
        assert ((prm.units or "").strip() or None) == unit
        if step is not None:
            assert prm.step_size == pytest.approx(step)
        # The attribute on the plugin object reads the current (default) value.
        assert float(getattr(plugin, attr)) == pytest.approx(default)
        assert not prm.is_automatable, f"{attr} should be non-automatable (structural)"


def test_bands_range_is_enforced(plugin):
    with pytest.raises(ValueError):
        plugin.bands = 200
    with pytest.raises(ValueError):
        plugin.bands = 8


def _apply_pending_parameter_changes(p):
    """JUCE hands a parameter set from Python to a VST3 in its next process() call; the
    plugin's state only sees the new value after that. Run one short silent block."""
    p.process(np.zeros((2, 64), np.float32), 48000, buffer_size=64, reset=False)


def test_raw_state_round_trip(plugin, vst3_path):
    state = plugin.raw_state
    assert isinstance(state, bytes) and len(state) > 0
    fresh = load_plugin(vst3_path)
    fresh.raw_state = state
    assert fresh.raw_state == state


def test_changed_parameters_survive_state_round_trip(plugin, vst3_path):
    default_state = plugin.raw_state
    changed = {"bands": 64.0, "lowest_band_hz": 80.0, "highest_band_hz": 12000.0, "hop_ms": 12.5}
    for attr, value in changed.items():
        setattr(plugin, attr, value)
    _apply_pending_parameter_changes(plugin)
    state = plugin.raw_state
    assert state != default_state, "changing the parameters did not change the saved state"

    fresh = load_plugin(vst3_path)
    fresh.raw_state = state
    for attr, value in changed.items():
        assert float(getattr(fresh, attr)) == pytest.approx(value, rel=1e-3), attr
    assert fresh.raw_state == state

    # And the restored instance still passes audio through untouched.
    audio = make_test_signal(48000, 2, seconds=0.1)
    assert np.array_equal(fresh.process(audio, 48000, buffer_size=512), audio)
