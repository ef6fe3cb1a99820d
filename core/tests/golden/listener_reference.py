#!/usr/bin/env python3
"""Independent numpy reference for Echoic's listener (core/src/listener/lstm/ and core/src/listener/candle.rs).

Writes listener_reference.json beside this script: the expected embeddings and reconstructions
of a model with deterministic weights on deterministic inputs, for relu and for tanh cells.
The Rust test `listener::tests::golden_*` rebuilds the same weights and inputs from the formulas
below and compares its output with these values.

Everything here is written from the equations, not from the Rust code:

  Keras-style LSTM, one bias per gate set, gate columns in the order i, f, g, o:
      z  = x @ kernel + h @ recurrent_kernel + bias        (kernel D x 4H, recurrent H x 4H)
      i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = act(z_g)
      c' = f * c + i * g;   h' = o * act(c')                (state starts at zero)
  Encoder: LSTM(50, sequences) -> LSTM(250), last hidden state = embedding.
  Decoder: embedding repeated T times -> LSTM(50) -> LSTM(n_bands), output sequence.
  Normalisation: z = (x_dB - offset[b]) * scale[b]; reconstruction_dB = z_hat / scale[b] + offset[b].

Deterministic values (all rounded to float32, then computed in float64):
  weights: tensor number k in forward order (encoder.0.kernel, encoder.0.recurrent_kernel,
           encoder.0.bias, encoder.1.kernel, ..., decoder.1.bias), element i in row-major order,
           an integer Weyl sequence (exact in any language, and free of the cancellations a
           plain sin(a*i) pattern gives in dot products):
           u = (i * 2654435761 + k * 1013904223) mod 2^32
           w = amp * (2 * u / 2^32 - 1), amp = 1.5 / sqrt(rows) for matrices, 0.5 for biases
  inputs:  sequence n, step t, band b:
           x_dB = -50 + 25 * sin(0.05 * b + 0.7 * t + 1.3 * n) + 10 * cos(0.11 * b * t + n)
  normalisation: offset[b] = -80 + 0.2 * b;  scale[b] = 1 / (50 + 0.3 * b)

Run with the project venv:  .venv/bin/python core/tests/golden/listener_reference.py
"""
import json
import os

import numpy as np

N_BANDS, STEPS = 100, 8
ENCODER, DECODER = [50, 250], [50]
N_SEQ = 2


def layers():
    out, d = [], N_BANDS
    for k, h in enumerate(ENCODER):
        out.append((f"encoder.{k}", d, h))
        d = h
    for k, h in enumerate(DECODER + [N_BANDS]):
        out.append((f"decoder.{k}", d, h))
        d = h
    return out


def weights():
    w, k = {}, 0
    for prefix, d, h in layers():
        for name, shape in (("kernel", (d, 4 * h)), ("recurrent_kernel", (h, 4 * h)), ("bias", (4 * h,))):
            i = np.arange(int(np.prod(shape)), dtype=np.uint64)
            u = (i * np.uint64(2654435761) + np.uint64(k) * np.uint64(1013904223)) % np.uint64(2**32)
            amp = 0.5 if len(shape) == 1 else 1.5 / np.sqrt(shape[0])
            v = amp * (2.0 * u.astype(np.float64) / 2.0**32 - 1.0)
            w[f"{prefix}.{name}"] = v.astype(np.float32).astype(np.float64).reshape(shape)
            k += 1
    return w


def inputs():
    n, t, b = np.meshgrid(np.arange(N_SEQ), np.arange(STEPS), np.arange(N_BANDS), indexing="ij")
    x = -50 + 25 * np.sin(0.05 * b + 0.7 * t + 1.3 * n) + 10 * np.cos(0.11 * b * t + n)
    return x.astype(np.float32).astype(np.float64)


def normalisation():
    b = np.arange(N_BANDS, dtype=np.float64)
    offset = (-80 + 0.2 * b).astype(np.float32).astype(np.float64)
    scale = (1 / (50 + 0.3 * b)).astype(np.float32).astype(np.float64)
    return offset, scale


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm(xs, kernel, recurrent, bias, act):
    """xs: list of (B, D) inputs, one per step; returns the list of hidden states."""
    hidden = recurrent.shape[0]
    h = np.zeros((xs[0].shape[0], hidden))
    c = np.zeros_like(h)
    out = []
    for x in xs:
        z = x @ kernel + h @ recurrent + bias
        i = sigmoid(z[:, :hidden])
        f = sigmoid(z[:, hidden:2 * hidden])
        g = act(z[:, 2 * hidden:3 * hidden])
        o = sigmoid(z[:, 3 * hidden:])
        c = f * c + i * g
        h = o * act(c)
        out.append(h)
    return out


def run(act):
    w = weights()
    offset, scale = normalisation()
    z = (inputs() - offset) * scale
    seq = [z[:, t, :] for t in range(STEPS)]
    for k in range(len(ENCODER)):
        p = f"encoder.{k}"
        seq = lstm(seq, w[p + ".kernel"], w[p + ".recurrent_kernel"], w[p + ".bias"], act)
    embedding = seq[-1]
    seq = [embedding] * STEPS
    for k in range(len(DECODER) + 1):
        p = f"decoder.{k}"
        seq = lstm(seq, w[p + ".kernel"], w[p + ".recurrent_kernel"], w[p + ".bias"], act)
    recon = np.stack(seq, axis=1) / scale + offset
    return embedding, recon


def main():
    acts = {"relu": lambda x: np.maximum(x, 0), "tanh": np.tanh}
    w = weights()
    doc = {
        "description": __doc__.strip().splitlines()[0],
        "generator": "core/tests/golden/listener_reference.py",
        "numpy": np.__version__,
        "n_bands": N_BANDS,
        "steps": STEPS,
        "encoder": ENCODER,
        "decoder": DECODER,
        "n_sequences": N_SEQ,
        "weights": "u = (i * 2654435761 + k * 1013904223) mod 2^32; w = amp * (2u/2^32 - 1); amp = 1.5/sqrt(rows) for matrices, 0.5 for biases; k = tensor number in forward order, i = row-major index",
        "inputs": "x_dB = -50 + 25 * sin(0.05 * b + 0.7 * t + 1.3 * n) + 10 * cos(0.11 * b * t + n)",
        "normalisation": "offset[b] = -80 + 0.2 * b; scale[b] = 1 / (50 + 0.3 * b)",
        "weight_sums": {name: float(v.sum()) for name, v in w.items()},
        "input_sum": float(inputs().sum()),
        "cases": {},
    }
    for name, act in acts.items():
        emb, recon = run(act)
        doc["cases"][name] = {
            "embedding": emb.reshape(-1).tolist(),
            "reconstruction_db": recon.reshape(-1).tolist(),
            "embedding_abs_max": float(np.abs(emb).max()),
        }
        print(name, "embedding |max|", np.abs(emb).max(), "mean", emb.mean(), "recon range", recon.min(), recon.max())
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "listener_reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
