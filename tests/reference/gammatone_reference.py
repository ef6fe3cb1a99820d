#!/usr/bin/env python3
"""Independent reference for Echoic's gammatone filterbank, computed with the Python
`Gammatone` package (version pinned in tests/python/requirements.txt, module `gammatone`).

Run from the repository root with the project venv:

    .venv/bin/python tests/reference/gammatone_reference.py

It (re)writes two fixtures:

* ``tests/fixtures/reference_signal.wav``: 1.0 s, mono, 48000 Hz, 32-bit IEEE float
  little-endian (WAVE_FORMAT_IEEE_FLOAT = 3, 18-byte fmt chunk with cbSize = 0, a ``fact``
  chunk, then ``data``), readable by the ``hound`` crate as ``SampleFormat::Float`` / 32 bits.
  Python 3.11's ``wave`` module only writes integer PCM, so the file is written by hand here.
  Content: seeded uniform white noise (RMS 0.1) plus tones at 200, 1000 and 3000 Hz
  (amplitude 0.1 each). The noise comes from SplitMix64, implemented below, so the signal
  does not depend on NumPy's random streams.

* ``tests/fixtures/gammatone_reference.json``: centre frequencies, ERBs and per-band powers;
  the docstring of ``build_reference`` gives the schema.

Everything is deterministic. ``tests/python/test_gammatone_reference.py`` re-runs this
computation in memory and checks it against the committed fixtures.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gammatone.filters import erb_filterbank, erb_space, make_erb_filters

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
WAV_PATH = FIXTURES / "reference_signal.wav"
JSON_PATH = FIXTURES / "gammatone_reference.json"

# ---- The reference signal -------------------------------------------------------------------

SIGNAL_SAMPLE_RATE = 48000
SIGNAL_SECONDS = 1.0
NOISE_SEED = 0x0EC401C  # "Echoic"
NOISE_RMS = 0.1
TONES_HZ = (200.0, 1000.0, 3000.0)
TONE_AMPLITUDE = 0.1

# ---- The configurations ---------------------------------------------------------------------

# (sample rate, lowest centre Hz, highest Hz passed to erb_space, number of bands, band powers?)
CONFIGS = (
    (48000, 50.0, 8000.0, 100, True),
    (44100, 50.0, 16000.0, 64, False),
)
DISCARD_SECONDS = 0.1  # filter start-up transient left out of the band powers

# Glasberg & Moore (1990) ERB, as the Rust side states it.
GM_MIN_BW = 24.7
GM_SLOPE = 4.37e-3
# The constants the Gammatone package uses instead: ERB = fc / EAR_Q + MIN_BW.
PKG_EAR_Q = 9.26449
PKG_MIN_BW = 24.7
BANDWIDTH_FACTOR = 1.019  # filter bandwidth b = 1.019 * ERB(fc), in make_erb_filters


def splitmix64(seed: int, n: int) -> np.ndarray:
    """First `n` outputs of SplitMix64 seeded with `seed`, as uint64 (Steele et al. 2014).

    Output i is mix(seed + (i + 1) * 0x9E3779B97F4A7C15) mod 2**64, so it is vectorised.
    """
    with np.errstate(over="ignore"):
        golden = np.uint64(0x9E3779B97F4A7C15)
        z = np.uint64(seed) + golden * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def make_reference_signal() -> np.ndarray:
    """The reference signal as float32, shape (48000,). Deterministic.

    Noise: u = (top 53 bits of SplitMix64) / 2**53 in [0, 1); noise = (2u - 1) * sqrt(3) * RMS,
    white with RMS `NOISE_RMS`. Tones: TONE_AMPLITUDE * sin(2 pi f n / fs), phase 0.
    Summed in float64, rounded once to float32. Peak well below 1.0.
    """
    n = int(round(SIGNAL_SECONDS * SIGNAL_SAMPLE_RATE))
    u = (splitmix64(NOISE_SEED, n) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    x = (2.0 * u - 1.0) * (np.sqrt(3.0) * NOISE_RMS)
    t = np.arange(n, dtype=np.float64) / SIGNAL_SAMPLE_RATE
    for f in TONES_HZ:
        x += TONE_AMPLITUDE * np.sin(2.0 * np.pi * f * t)
    return x.astype(np.float32)


def wav_bytes_float32_mono(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono 32-bit IEEE float WAV file (WAVE_FORMAT_IEEE_FLOAT), little-endian."""
    data = np.asarray(samples, dtype="<f4").tobytes()
    n = len(samples)
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)  # + cbSize 0
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"fact" + struct.pack("<II", 4, n)
        + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def read_wav_float32_mono(path: Path) -> tuple[np.ndarray, int]:
    """Read back a file written by `wav_bytes_float32_mono` (strict about the format)."""
    raw = Path(path).read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", "not a RIFF/WAVE file"
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    assert fmt is not None and data is not None, "missing fmt or data chunk"
    tag, channels, rate, _, _, bits = fmt
    assert (tag, channels, bits) == (3, 1, 32), f"expected mono float32, got {fmt}"
    return np.frombuffer(data, dtype="<f4").astype(np.float32), rate


# ---- The reference values -------------------------------------------------------------------


def erb_glasberg_moore(fc: np.ndarray) -> np.ndarray:
    """ERB(fc) = 24.7 * (4.37e-3 * fc + 1), in Hz (Glasberg & Moore 1990)."""
    return GM_MIN_BW * (GM_SLOPE * fc + 1.0)


def erb_package(fc: np.ndarray) -> np.ndarray:
    """The ERB the package's make_erb_filters actually uses: fc / 9.26449 + 24.7 (width = 1)."""
    return fc / PKG_EAR_Q + PKG_MIN_BW


def band_powers_db(signal: np.ndarray, fs: int, cfs: np.ndarray, discard: int) -> np.ndarray:
    """10*log10(mean(y**2)) per band of erb_filterbank(signal), after dropping `discard` samples.

    The float32 signal is upcast to float64 first (exactly), as the package computes in float64.
    """
    y = erb_filterbank(signal.astype(np.float64), make_erb_filters(fs, cfs))
    return 10.0 * np.log10(np.mean(y[:, discard:] ** 2, axis=1))


def build_reference(signal: np.ndarray, wav_sha256: str) -> dict:
    """The JSON document, as a dict. Schema (all frequencies in Hz, floats as full-precision
    JSON numbers, every per-band list in erb_space's order, i.e. descending frequency):

    - ``generator``: this script's path.
    - ``package``: ``{name: "Gammatone", module: "gammatone", version}`` actually installed.
    - ``functions``: the package calls that produced the values (strings).
    - ``notes``: human-readable remarks (order, formulas).
    - ``erb_formula``: ``glasberg_moore`` and ``package`` ERB formulas (strings),
      ``bandwidth_factor`` 1.019, ``filter_order`` 4.
    - ``signal``: the WAV: ``file`` (name in tests/fixtures), ``sha256`` of the whole file,
      ``sample_rate``, ``num_samples``, ``channels``, ``sample_format``, ``noise``
      (``generator``, ``seed``, ``distribution``, ``rms``), ``tones_hz``, ``tone_amplitude``,
      ``peak`` and ``rms`` of the samples.
    - ``configs``: list of objects, one per configuration:
      ``sample_rate``, ``low_hz``, ``high_hz``, ``num_bands`` (the erb_space arguments),
      ``order`` ("descending"), ``centre_freqs_hz`` (erb_space(low_hz, high_hz, num_bands)),
      ``erb_hz`` (24.7*(4.37e-3*fc + 1) per band), ``erb_hz_package`` (fc/9.26449 + 24.7 per
      band), and ``band_power``: null, or (48 kHz config) ``{signal, discard_seconds,
      discard_samples, measured_samples, definition, power_db}`` where ``power_db[k]`` is
      10*log10(mean(y_k[discard_samples:]**2)) for band k of erb_filterbank on the WAV.
    """
    n = len(signal)
    configs = []
    for fs, low, high, bands, with_power in CONFIGS:
        cfs = np.asarray(erb_space(low, high, bands), dtype=np.float64)
        cfg = {
            "sample_rate": fs,
            "low_hz": low,
            "high_hz": high,
            "num_bands": bands,
            "order": "descending",
            "centre_freqs_hz": cfs.tolist(),
            "erb_hz": erb_glasberg_moore(cfs).tolist(),
            "erb_hz_package": erb_package(cfs).tolist(),
            "band_power": None,
        }
        if with_power:
            assert fs == SIGNAL_SAMPLE_RATE
            discard = int(round(DISCARD_SECONDS * fs))
            cfg["band_power"] = {
                "signal": WAV_PATH.name,
                "discard_seconds": DISCARD_SECONDS,
                "discard_samples": discard,
                "measured_samples": n - discard,
                "definition": "10*log10(mean(y[discard:]**2)) with y = one row of "
                "erb_filterbank(x, make_erb_filters(fs, centre_freqs_hz)), x = the WAV "
                "samples upcast to float64, filters starting from rest at sample 0",
                "power_db": band_powers_db(signal, fs, cfs, discard).tolist(),
            }
        configs.append(cfg)
    return {
        "generator": "tests/reference/gammatone_reference.py",
        "package": {"name": "Gammatone", "module": "gammatone",
                    "version": importlib.metadata.version("Gammatone")},
        "functions": {
            "centre_freqs": "gammatone.filters.erb_space(low_hz, high_hz, num_bands)",
            "filterbank": "gammatone.filters.erb_filterbank(x, gammatone.filters.make_erb_filters(fs, centre_freqs_hz))",
        },
        "notes": [
            "centre_freqs_hz is exactly what erb_space returns: descending, from below high_hz "
            "(erb_space never returns high_hz itself: its first value is k = 1) down to low_hz "
            "(k = n, equal to low_hz up to floating-point rounding).",
            "erb_space spaces bands on the package's ERB scale: "
            "f_k = -EAR_Q*MIN_BW + (high + EAR_Q*MIN_BW) * exp((k/n) * ln((low + EAR_Q*MIN_BW)/(high + EAR_Q*MIN_BW))), "
            "k = 1..n, EAR_Q = 9.26449, MIN_BW = 24.7.",
            "erb_hz = 24.7*(4.37e-3*fc + 1) (Glasberg & Moore); erb_hz_package = fc/9.26449 + 24.7 "
            "(what make_erb_filters uses; the two agree to 3e-7 relative). The filters' bandwidth "
            "parameter is 1.019 * erb_hz_package; each band has unity gain at its centre.",
        ],
        "erb_formula": {"glasberg_moore": "24.7*(4.37e-3*fc + 1)", "package": "fc/9.26449 + 24.7",
                        "bandwidth_factor": BANDWIDTH_FACTOR, "filter_order": 4},
        "signal": {
            "file": WAV_PATH.name,
            "sha256": wav_sha256,
            "sample_rate": SIGNAL_SAMPLE_RATE,
            "num_samples": n,
            "channels": 1,
            "sample_format": "32-bit IEEE float, little-endian (WAVE_FORMAT_IEEE_FLOAT)",
            "noise": {"generator": "splitmix64", "seed": NOISE_SEED, "distribution": "uniform",
                      "rms": NOISE_RMS},
            "tones_hz": list(TONES_HZ),
            "tone_amplitude": TONE_AMPLITUDE,
            "peak": float(np.max(np.abs(signal))),
            "rms": float(np.sqrt(np.mean(signal.astype(np.float64) ** 2))),
        },
        "configs": configs,
    }


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=1) + "\n"


def main() -> int:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    signal = make_reference_signal()
    wav = wav_bytes_float32_mono(signal, SIGNAL_SAMPLE_RATE)
    WAV_PATH.write_bytes(wav)
    read_back, _ = read_wav_float32_mono(WAV_PATH)
    assert np.array_equal(read_back, signal)
    doc = build_reference(read_back, hashlib.sha256(wav).hexdigest())
    JSON_PATH.write_text(to_json(doc))
    print(f"wrote {WAV_PATH.relative_to(REPO_ROOT)} ({len(wav)} bytes) and "
          f"{JSON_PATH.relative_to(REPO_ROOT)} ({JSON_PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
