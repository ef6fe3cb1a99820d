"""Echoic's VST3 in minihost (a small JUCE-based host), which also returns MIDI output.

`minihost.Plugin(path, sample_rate, max_block_size, in_channels, out_channels)`;
`plugin.process_midi(input, output, midi_in, capacity)` takes float32 (channels, frames)
C-contiguous arrays and returns the plugin's MIDI output as a list of
(sample_offset, status, data1, data2) tuples.
"""

from __future__ import annotations

import minihost
import numpy as np
import pytest

from helpers import SAMPLE_RATES, collect_midi_out, control_changes, make_test_signal

MAX_BLOCK = 4096


def open_plugin(vst3_path: str, sample_rate: int, channels: int, max_block: int = MAX_BLOCK):
    p = minihost.Plugin(vst3_path, float(sample_rate), max_block, channels, channels)
    assert p.num_input_channels == channels
    assert p.num_output_channels == channels
    return p


def test_reports_io_and_midi(vst3_path):
    p = open_plugin(vst3_path, 48000, 2)
    assert p.produces_midi, "Echoic declares MIDI CC output"
    assert p.num_params >= 8
    names = [p.get_param_info(i)["name"] for i in range(p.num_params)]
    assert {"Bands", "Lowest band", "Highest band", "Hop", "Steps", "Dilation", "Dilation spacing", "Pooling"} <= set(names)
    assert p.latency_samples == 0
    assert p.get_bus_info(True, 0)["num_channels"] == 2
    assert p.get_bus_info(False, 0)["num_channels"] == 2


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("channels", [2, 1], ids=["stereo", "mono"])
@pytest.mark.parametrize("block_size", [64, 441, 512, MAX_BLOCK])
def test_passthrough_and_midi_out(vst3_path, sample_rate, channels, block_size):
    p = open_plugin(vst3_path, sample_rate, channels)
    audio = make_test_signal(sample_rate, channels)
    out, midi = collect_midi_out(p, audio, block_size)
    assert np.array_equal(out, audio), f"not bit-exact at {np.count_nonzero(out != audio)} samples"
    assert isinstance(midi, list)
    # Only the default slots' control changes (CC 20-22, channel 1) come out; the CC stream
    # itself is checked in test_vst3_cc_stream.py.
    assert control_changes(midi) == [(pos, st & 0x0F, d1, d2) for pos, st, d1, d2 in midi]
    assert {cc for _, ch, cc, _ in control_changes(midi) if ch == 0} <= {20, 21, 22}
    assert p.midi_out_dropped == 0


def test_single_block_process_midi_returns_list(vst3_path):
    p = open_plugin(vst3_path, 48000, 2, max_block=512)
    audio = np.ascontiguousarray(make_test_signal(48000, 2)[:, :512])
    out = np.zeros_like(audio)
    events = p.process_midi(audio, out, [])
    assert isinstance(events, list)
    assert all(status & 0xF0 == 0xB0 for _, status, _, _ in events)
    assert np.array_equal(out, audio)


def test_state_round_trip(vst3_path):
    p = open_plugin(vst3_path, 48000, 2)
    default_state = p.get_state()
    bands = p.find_param("Bands")
    p.set_param(bands, p.param_from_text(bands, "64"))
    collect_midi_out(p, np.zeros((2, 256), np.float32), 256)  # let the change reach the processor
    assert p.param_to_text(bands, p.get_param(bands)) == "64"
    state = p.get_state()
    assert state != default_state

    q = open_plugin(vst3_path, 48000, 2)
    q.set_state(state)
    assert q.param_to_text(bands, q.get_param(bands)) == "64"
    assert q.get_state() == state
