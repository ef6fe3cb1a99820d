"""PyTorch's side of `cargo xtask bench --torch`: the listener autoencoder in `torch.nn.LSTM`.

Usage: python torch_lstm.py DIR [--seconds S]

DIR is what `cargo bench -p echoic-core --bench lstm -- --out DIR` wrote:

- `weights.safetensors`: f32 tensors in Keras layout, gates in the order i, f, g, o (torch's
  order too). For each layer `encoder.0`, `encoder.1`, ..., `decoder.0`, ...:
  `PREFIX.kernel` (D x 4H), `PREFIX.recurrent_kernel` (H x 4H), `PREFIX.bias` (4H); and the
  inputs `input_b64` (64 x T x n_bands) and `input_b1` (1 x T x n_bands), batch-major.
- `echoic.json`: the configuration (`config`, `batch`, `learning_rate`, `weight_decay`,
  `clip_grad_norm`) and Echoic's timings, which this script does not read.

On those shapes, weights and inputs this script times, with one thread:

- `infer-b1`, `infer-b64`: the encoder alone (input -> embedding) under
  `torch.inference_mode()`, at batch 1 and at batch 64, in seconds per embedding;
- `train-b64`: one training step at batch 64 (zero_grad, forward through encoder and decoder,
  mean squared error against the input, backward, global gradient-norm clipping, AdamW step),
  in seconds per step;
- `train-b64-torch-2threads`: the same step with `torch.set_num_threads(2)`, for information.

Each figure is the median of repeated samples after a warm-up, each measurement lasting about
`--seconds` (2.5 s unless told). The figures, torch's version and, as a correctness cross-check,
torch's embeddings of `input_b1` and of the first row of `input_b64` (and the loss of the
untrained model on `input_b64`) are written to `DIR/torch.json` and printed.

The model: encoder = LSTM(n_bands -> encoder[0], sequences) -> ... -> LSTM(-> encoder[-1], last
hidden state only) = the embedding; decoder = the embedding repeated T times -> LSTM(->
decoder[0], sequences) -> ... -> LSTM(-> n_bands, sequences) = the reconstruction. Torch's LSTM
has two biases; `bias_ih` takes Keras's bias and `bias_hh` is zero and frozen, so both
frameworks train the same parameters.

The safetensors file is parsed by hand (an 8-byte little-endian header length, a JSON header,
then the raw data) so that the only dependencies are torch and numpy.
"""

import argparse
import json
import math
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

# The numpy type of each safetensors dtype this script accepts.
DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def load_safetensors(path):
    """Every tensor in a safetensors file, as float32 numpy arrays by name."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    body = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = math.prod(shape)
        if end - start != count * np.dtype(dtype).itemsize or end > len(body):
            raise ValueError(
                f"{path}: tensor {name}: offsets {start}..{end} do not fit shape {shape}"
            )
        array = np.frombuffer(body[start:end], dtype=np.dtype(dtype).newbyteorder("<"), count=count)
        tensors[name] = array.reshape(shape).astype(np.float32)
    return tensors


def lstm_layer(tensors, prefix, input_size, hidden_size):
    """An `nn.LSTM(batch_first=True)` holding the Keras-layout weights stored under `prefix`."""
    try:
        kernel = tensors[f"{prefix}.kernel"]
        recurrent = tensors[f"{prefix}.recurrent_kernel"]
        bias = tensors[f"{prefix}.bias"]
    except KeyError as missing:
        raise ValueError(f"weights.safetensors has no tensor {missing}") from None
    expected = {
        "kernel": (input_size, 4 * hidden_size),
        "recurrent_kernel": (hidden_size, 4 * hidden_size),
        "bias": (4 * hidden_size,),
    }
    for name, array in [("kernel", kernel), ("recurrent_kernel", recurrent), ("bias", bias)]:
        if array.shape != expected[name]:
            raise ValueError(
                f"{prefix}.{name} has shape {array.shape}, the config implies {expected[name]}"
            )
    layer = nn.LSTM(input_size, hidden_size, batch_first=True)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        layer.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(recurrent.T)))
        layer.bias_ih_l0.copy_(torch.from_numpy(bias))
        layer.bias_hh_l0.zero_()
    # Keras has one bias: keep torch's second one at zero, out of the gradients and the optimiser.
    layer.bias_hh_l0.requires_grad_(False)
    return layer


class Autoencoder(nn.Module):
    """The listener autoencoder: stacked LSTMs down to an embedding, RepeatVector, stacked LSTMs
    back to the bands."""

    def __init__(self, tensors, config):
        super().__init__()
        n_bands = config["n_bands"]
        encoder = list(config["encoder"])
        decoder = list(config["decoder"]) + [n_bands]
        sizes = [n_bands] + encoder
        self.encoder = nn.ModuleList(
            lstm_layer(tensors, f"encoder.{i}", sizes[i], sizes[i + 1]) for i in range(len(encoder))
        )
        sizes = [encoder[-1]] + decoder
        self.decoder = nn.ModuleList(
            lstm_layer(tensors, f"decoder.{i}", sizes[i], sizes[i + 1]) for i in range(len(decoder))
        )

    def embed(self, x):
        """B x T x n_bands -> B x encoder[-1]: the last layer's final hidden state."""
        for layer in self.encoder[:-1]:
            x, _ = layer(x)
        _, (h, _) = self.encoder[-1](x)
        return h[-1]

    def forward(self, x):
        """B x T x n_bands -> the reconstruction, B x T x n_bands."""
        embedding = self.embed(x)
        y = embedding.unsqueeze(1).expand(-1, x.shape[1], -1)
        for layer in self.decoder:
            y, _ = layer(y)
        return y


def median_seconds(step, seconds, per_call=1):
    """The median time of one call of `step`, divided by `per_call`, over samples lasting about
    `seconds` in all after a warm-up; short calls are grouped so that a sample lasts ~20 ms."""
    warm_until = time.perf_counter() + min(0.5, seconds / 5)
    calls = 0
    start = time.perf_counter()
    while calls < 3 or time.perf_counter() < warm_until:
        step()
        calls += 1
    estimate = (time.perf_counter() - start) / calls
    group = max(1, int(0.02 / estimate))
    samples = []
    end = time.perf_counter() + seconds
    while len(samples) < 5 or time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(group):
            step()
        samples.append((time.perf_counter() - t0) / group)
    return statistics.median(samples) / per_call


def train_seconds(tensors, config, settings, x, seconds, threads):
    """Seconds per training step at x's batch, on `threads` threads, from fresh weights."""
    torch.set_num_threads(threads)
    model = Autoencoder(tensors, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        params,
        lr=settings["learning_rate"],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=settings["weight_decay"],
    )
    clip = settings["clip_grad_norm"]

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimiser.step()

    try:
        return median_seconds(step, seconds)
    finally:
        torch.set_num_threads(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="the directory the Rust lstm bench wrote")
    parser.add_argument("--seconds", type=float, default=2.5, help="length of each measurement")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    echoic = json.loads((args.dir / "echoic.json").read_text())
    config = echoic["config"]
    if config.get("activation") != "tanh":
        sys.exit(f"torch's nn.LSTM has tanh only; echoic.json asks for {config.get('activation')}")
    settings = {
        "learning_rate": echoic.get("learning_rate", 1e-3),
        "weight_decay": echoic.get("weight_decay", 1e-4),
        "clip_grad_norm": echoic.get("clip_grad_norm", 1.0),
    }
    tensors = load_safetensors(args.dir / "weights.safetensors")
    steps, n_bands = config["steps"], config["n_bands"]
    inputs = {}
    for name in ["input_b1", "input_b64"]:
        if name not in tensors:
            sys.exit(f"weights.safetensors has no tensor {name}")
        array = tensors[name]
        if array.ndim != 3 or array.shape[1:] != (steps, n_bands):
            sys.exit(f"{name} has shape {array.shape}, expected B x {steps} x {n_bands}")
        inputs[name] = torch.from_numpy(np.ascontiguousarray(array))
    x1, x64 = inputs["input_b1"], inputs["input_b64"]
    if x1.shape[0] != 1:
        sys.exit(f"input_b1 has batch {x1.shape[0]}, expected 1")
    batch = x64.shape[0]
    if batch != echoic.get("batch", batch):
        sys.exit(f"input_b64 has batch {batch}, echoic.json says {echoic['batch']}")

    model = Autoencoder(tensors, config)
    with torch.inference_mode():
        embedding_b1 = model.embed(x1)[0]
        embedding_b64 = model.embed(x64)[0]
        loss_b64 = nn.functional.mse_loss(model(x64), x64).item()

        def infer(x):
            return lambda: model.embed(x)

        seconds = {
            "infer-b1": median_seconds(infer(x1), args.seconds, per_call=1),
            "infer-b64": median_seconds(infer(x64), args.seconds, per_call=batch),
        }
    seconds["train-b64"] = train_seconds(tensors, config, settings, x64, args.seconds, threads=1)
    seconds["train-b64-torch-2threads"] = train_seconds(
        tensors, config, settings, x64, args.seconds, threads=2
    )

    result = {
        "torch_version": torch.__version__,
        "threads": 1,
        "seconds": seconds,
        "loss_b64": loss_b64,
        "embedding_b1": [round(v, 7) for v in embedding_b1.tolist()],
        "embedding_b64_first_row": [round(v, 7) for v in embedding_b64.tolist()],
    }
    (args.dir / "torch.json").write_text(json.dumps(result) + "\n")
    print(f"PyTorch {torch.__version__}, one thread (set_num_threads(1), interop threads 1)")
    for name, value in seconds.items():
        unit = "per embedding" if name.startswith("infer") else "per step"
        print(f"  {name:<26} {value * 1e6:12.1f} µs {unit}")
    print(f"  untrained loss on input_b64: {loss_b64:.6g}")
    print(f"wrote {args.dir / 'torch.json'}")


if __name__ == "__main__":
    main()
