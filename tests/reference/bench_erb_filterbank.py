"""Times the Python Gammatone 1.0.3 `erb_filterbank` on N seconds of 48 kHz noise with 100 ERB
bands from 50 Hz to 24 kHz, and prints the best of two runs in seconds. Called by the Rust
benchmark `core/benches/listening.rs`, which prints the ratio."""
import sys
import time

import numpy as np
from gammatone.filters import centre_freqs, erb_filterbank, make_erb_filters

FS = 48000
seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
signal = np.random.default_rng(0).uniform(-0.5, 0.5, FS * seconds)
filters = make_erb_filters(FS, centre_freqs(FS, 100, 50))
best = float("inf")
for _ in range(2):
    start = time.perf_counter()
    erb_filterbank(signal, filters)
    best = min(best, time.perf_counter() - start)
print(best)
