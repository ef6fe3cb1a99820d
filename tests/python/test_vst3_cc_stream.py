"""The automation outputs through a real VST3 host: minihost plays a real recording through
Echoic.vst3 in real time and receives its MIDI CC stream (by default slots 1-3 send the first
three principal axes of the embedding on CC 20-22, channel 1)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import minihost
import numpy as np

from helpers import collect_midi_out, control_changes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BLOCK = 512


def read_fixture(name: str) -> tuple[np.ndarray, int]:
    with wave.open(str(FIXTURES / name)) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data, rate


def play_in_real_time(plugin, audio: np.ndarray, rate: int) -> list[tuple[int, int, int, int]]:
    """Feeds `audio` block by block at the pace a DAW would, so the plugin's worker thread
    keeps up as it does in a session; returns all MIDI out with absolute positions."""
    midi: list[tuple[int, int, int, int]] = []
    start = time.perf_counter()
    for i, begin in enumerate(range(0, audio.shape[1], BLOCK)):
        block = audio[:, begin : begin + BLOCK]
        _, events = collect_midi_out(plugin, block, BLOCK)
        midi.extend((begin + pos, st, d1, d2) for pos, st, d1, d2 in events)
        due = (i + 1) * BLOCK / rate
        wait = due - (time.perf_counter() - start)
        if wait > 0:
            time.sleep(wait)
    return midi


def test_default_slots_stream_principal_axes_as_cc(vst3_path):
    music, rate = read_fixture("music_armygeddon.wav")
    speech, _ = read_fixture("speech_june.wav")
    audio = np.concatenate([music, speech])[None, :].astype(np.float32)
    plugin = minihost.Plugin(vst3_path, float(rate), BLOCK, 1, 1)
    midi = play_in_real_time(plugin, audio, rate)
    ccs = control_changes(midi)
    assert ccs, "no CC received"
    controllers = {cc for _, _, cc, _ in ccs}
    assert controllers == {20, 21, 22}, controllers
    assert {ch for _, ch, _, _ in ccs} == {0}
    # Until the memory has warmed up and the first embedding exists (1.28 s), the axes hold the
    # neutral middle of their range.
    early = {v for pos, _, _, v in ccs if pos < int(1.27 * rate)}
    assert early <= {63, 64}, early
    # The axes move with the sound, and the stream is not flooded: at most one message per
    # controller per 10 ms hop.
    for cc in (20, 21, 22):
        values = [v for _, _, c, v in ccs if c == cc]
        assert max(values) - min(values) >= 10, (cc, min(values), max(values))
        assert len(values) <= audio.shape[1] / (0.010 * rate), (cc, len(values))
    # Music and speech sit at different places on the first axis.
    split = music.size
    first_axis = [(pos, v) for pos, _, c, v in ccs if c == 20]
    on_music = [v for pos, v in first_axis if int(1.5 * rate) <= pos < split]
    on_speech = [v for pos, v in first_axis if pos >= split + int(1.5 * rate)]
    assert on_music and on_speech
    assert abs(np.mean(on_music) - np.mean(on_speech)) > 5, (np.mean(on_music), np.mean(on_speech))
