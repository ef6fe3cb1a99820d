"""Helpers shared by the host tests: the test signal and MIDI-out collection.

Nothing here is named `test_*`, so pytest never collects it as a test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SAMPLE_RATES = (44100, 48000)
BUFFER_SIZES = (1, 32, 100, 441, 512, 1024, 4096)

# A MIDI event as minihost returns it: (sample offset in its block, status, data1, data2).
MidiEvent = tuple[int, int, int, int]


def make_test_signal(sample_rate: int, channels: int, seconds: float = 0.5, seed: int = 1234) -> np.ndarray:
    """The one audio signal the host tests feed the plugin.

    Shape `(channels, frames)`, float32, C-contiguous, deterministic for given arguments.
    Non-trivial: per channel a few tones (different on each channel), seeded white noise, an
    impulse, and some exact zeros, peaking below 1.0. Later this may be swapped for a real
    recording fixture: keep every test taking its audio from here.
    """
    frames = int(round(seconds * sample_rate))
    t = np.arange(frames, dtype=np.float64) / sample_rate
    rng = np.random.default_rng(seed)
    out = np.empty((channels, frames), dtype=np.float32)
    for ch in range(channels):
        tones = [(110.0 * (ch + 1), 0.20), (997.0 + 13.0 * ch, 0.10), (5003.0 - 7.0 * ch, 0.05)]
        x = sum(a * np.sin(2.0 * np.pi * f * t + 0.3 * ch) for f, a in tones)
        x = x + 0.05 * rng.standard_normal(frames)
        impulse_at = frames // 3 + 17 * ch
        x[impulse_at] = 0.9 if ch % 2 == 0 else -0.9
        x[frames // 2 : frames // 2 + 64] = 0.0  # a stretch of digital silence
        out[ch] = x.astype(np.float32)
    assert np.max(np.abs(out)) < 1.0
    return np.ascontiguousarray(out)


def collect_midi_out(plugin, audio: np.ndarray, block_size: int, midi_in: Sequence[MidiEvent] = ()) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Run `audio` (channels x frames, float32) through a minihost `plugin` block by block.

    Returns `(output_audio, midi_out)`, where `midi_out` holds every MIDI event the plugin
    emitted, in order, as `(absolute_sample_position, status, data1, data2)`: the block's
    offset is added to each event's in-block offset. `midi_in` events use absolute positions
    too and are delivered in the block they fall in. The last block may be short.

    Fails if a block's MIDI output could have been truncated (it filled the capacity).
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    channels, frames = audio.shape
    if block_size > plugin.max_block_size:
        raise ValueError(f"block_size {block_size} > plugin max_block_size {plugin.max_block_size}")
    capacity = 4096
    output = np.zeros_like(audio)
    midi_out: list[tuple[int, int, int, int]] = []
    for start in range(0, frames, block_size):
        stop = min(start + block_size, frames)
        block_in = np.ascontiguousarray(audio[:, start:stop])
        block_out = np.zeros_like(block_in)
        block_midi_in = [(int(pos) - start, st, d1, d2) for pos, st, d1, d2 in midi_in if start <= pos < stop]
        events = plugin.process_midi(block_in, block_out, block_midi_in, capacity)
        assert isinstance(events, list), f"process_midi returned {type(events).__name__}, not list"
        assert len(events) < capacity, "MIDI output may have been truncated"
        for offset, status, data1, data2 in events:
            assert 0 <= offset < stop - start, f"MIDI event offset {offset} outside block of {stop - start}"
            midi_out.append((start + int(offset), int(status), int(data1), int(data2)))
        output[:, start:stop] = block_out
    return output, midi_out


def control_changes(midi_out: Sequence[MidiEvent]) -> list[tuple[int, int, int, int]]:
    """The Control Change messages in `midi_out`, as `(position, channel 0-15, controller, value)`."""
    return [(pos, st & 0x0F, d1, d2) for pos, st, d1, d2 in midi_out if st & 0xF0 == 0xB0]
