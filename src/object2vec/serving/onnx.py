"""ONNX export of a trained model, and a predictor that runs the exported graphs with onnxruntime.

``object2vec export MODEL --format onnx -o DIR`` writes three graphs (opset 17, dynamic batch and
length) that run anywhere ONNX does, outside PyTorch::

    DIR/
      encoder0.onnx   tokens (B, T) int64, lengths (B,) int64  ->  embeddings (B, enc_dim) float32
      encoder1.onnx   the same for in1
      scorer.onnx     tokens0, lengths0, tokens1, lengths1     ->  scores (B, num_classes) softmax
                                                                   probabilities, or (B, 1) regression
                                                                   (or cosine: objective=cosine/contrastive)
      config.json, metrics.json, auxiliary/   copied from MODEL: hyperparameters and vocabularies
      onnx.json       what was exported, by which versions, and the inputs' conventions

Inputs are *padded*, the form ONNX users hold: ``tokens[b, t]`` for ``t < lengths[b]`` are the ids,
the rest of each row is ignored (any value in ``[0, vocab_size)``, 0 is fine). The graphs compute
exactly what the PyTorch encoders compute on flat sequences (``tests/test_onnx.py`` compares them to
1e-5 for every encoder): pooled means over valid tokens, hcnn's convolutions see zeros beyond a
sequence's end, and bilstm's backward direction starts at each sequence's own last token (each
direction is a unidirectional ONNX ``LSTM``; the backward one reads the sequence reversed in place).

The TorchScript exporter (``dynamo=False``) is used: on these graphs it exports in about a second
and gives the same numbers; the dynamo exporter took ~14 s per graph here.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from .._optional import require
from ..errors import ModelFormatError, Object2VecError
from ..files import atomic_path, atomic_write_json
from ..hyperparameters import Hyperparameters
from ..model_folder import ASSETS, CONFIG, METRICS, load_text, read_config
from ..nn.encoders import HCNN, BiLSTM, PooledEmbedding
from ..nn.model import Object2VecNet, compare, cosine
from .predictor import BATCH_SIZE, Predictor

OPSET = 17
GRAPHS = {"encoder0": "encoder0.onnx", "encoder1": "encoder1.onnx", "scorer": "scorer.onnx"}
MANIFEST = "onnx.json"


# --------------------------------------------------------------------------------------------------
# Encoders over padded input, with the trained encoders' weights


def _valid(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` True where ``t < lengths[b]``."""
    return torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]


def _reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` steps in place; steps beyond stay where they are."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2]))


class PaddedEncoder(nn.Module):
    """One trained encoder as a function of padded ``(tokens, lengths)``: export-friendly operations only."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.kind = type(encoder)
        if self.kind not in (PooledEmbedding, HCNN, BiLSTM):
            raise Object2VecError(f"ONNX export does not know the encoder {type(encoder).__name__}")
        pooling = getattr(encoder, "pooling", "mean")
        if pooling != "mean":
            raise Object2VecError(f"ONNX export supports pooled_embedding's mean pooling only; this model pools by {pooling}")
        table = cast(nn.Embedding, encoder.embedding)
        self.weight = nn.Parameter(table.weight.detach().clone(), requires_grad=False)
        self.convs = encoder.convs if isinstance(encoder, HCNN) else nn.ModuleList()
        lstm = encoder.lstm if isinstance(encoder, BiLSTM) else None
        self.forward_lstms, self.backward_lstms = (
            _unidirectional(lstm) if lstm is not None else (nn.ModuleList(), nn.ModuleList())
        )
        self.project = encoder.project if isinstance(encoder, HCNN | BiLSTM) else nn.Identity()

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = _valid(tokens, lengths)  # (B, T)
        x = F.embedding(tokens, self.weight) * valid[:, :, None].to(self.weight.dtype)  # (B, T, D), zeros beyond the end
        if self.kind is PooledEmbedding:
            return x.sum(dim=1) / lengths[:, None].to(x.dtype)
        if self.kind is HCNN:
            return self._hcnn(x, valid)
        return self._bilstm(x, valid, lengths)

    def _hcnn(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, D, T)
        keep = valid[:, None, :].to(h.dtype)
        pooled = []
        for conv in cast(list[nn.Conv1d], list(self.convs)):
            width = conv.kernel_size[0]
            y = F.conv1d(F.pad(h, ((width - 1) // 2, width // 2)), conv.weight, conv.bias)  # "same", as in training
            h = F.relu(y) * keep  # beyond the end: zeros, as the flat encoder's padding
            pooled.append(h.amax(dim=2))  # values >= 0 and padding 0: the max over valid positions
        return self.project(torch.cat(pooled, dim=1))

    def _bilstm(self, x: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Steps beyond a sequence's end come after its valid steps in both directions, so they never
        # reach a valid output; the backward direction reads each sequence reversed in place.
        for forward_lstm, backward_lstm in zip(self.forward_lstms, self.backward_lstms, strict=True):
            ahead, _ = forward_lstm(x)
            back, _ = backward_lstm(_reverse_valid(x, lengths))
            x = torch.cat([ahead, _reverse_valid(back, lengths)], dim=2)  # (B, T, 2H)
        x = x.masked_fill(~valid[:, :, None], float("-inf"))
        return self.project(x.amax(dim=1))


def _unidirectional(lstm: nn.LSTM) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Each layer and direction of a bidirectional ``nn.LSTM`` as its own one-layer LSTM."""
    forwards, backwards = nn.ModuleList(), nn.ModuleList()
    for layer in range(lstm.num_layers):
        for suffix, bucket in (("", forwards), ("_reverse", backwards)):
            size = lstm.input_size if layer == 0 else 2 * lstm.hidden_size
            single = nn.LSTM(size, lstm.hidden_size, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(single, f"{name}_l0").data.copy_(getattr(lstm, f"{name}_l{layer}{suffix}").detach())
            bucket.append(single.requires_grad_(False))
    return forwards, backwards


class PaddedScorer(nn.Module):
    """The pair score (what the endpoint returns as ``scores``) from padded inputs of both sides."""

    def __init__(self, net: Object2VecNet):
        super().__init__()
        self.hp = net.hp
        self.encoders = nn.ModuleList(PaddedEncoder(e) for e in net.encoders)
        self.mlp, self.output = net.mlp, net.output

    def forward(
        self, tokens0: torch.Tensor, lengths0: torch.Tensor, tokens1: torch.Tensor, lengths1: torch.Tensor
    ) -> torch.Tensor:
        u, v = self.encoders[0](tokens0, lengths0), self.encoders[1](tokens1, lengths1)
        if self.mlp is None or self.output is None:  # objective=cosine or contrastive: no head
            return cosine(u, v)[:, None]
        out = self.output(self.mlp(compare(u, v, self.hp.comparator_list)))
        return out[:, :1] if self.hp.is_regression else torch.softmax(out, dim=1)


# --------------------------------------------------------------------------------------------------
# Export


def export_onnx(model_dir: str | Path, output: str | Path) -> Path:
    """Write ``output/{encoder0,encoder1,scorer}.onnx`` for the model in ``model_dir``; returns ``output``."""
    require("onnx", "ONNX export")
    from ..estimator import Object2Vec

    model_dir, output = Path(model_dir), Path(output)
    if output.resolve() == model_dir.resolve():
        raise Object2VecError(f"-o {output}: is the model folder itself; choose another folder for the export")
    net = Object2Vec.load(model_dir, device="cpu")._fitted().float().eval()
    output.mkdir(parents=True, exist_ok=True)
    example = _example(net.hp)
    with torch.no_grad():
        for side in (0, 1):
            _export(PaddedEncoder(net.encoders[side]).eval(), example[side], ("tokens", "lengths"), "embeddings",
                    output / GRAPHS[f"encoder{side}"])  # fmt: skip
        _export(PaddedScorer(net).eval(), example[0] + example[1], ("tokens0", "lengths0", "tokens1", "lengths1"),
                "scores", output / GRAPHS["scorer"])  # fmt: skip
    for name in (CONFIG, METRICS):
        if (model_dir / name).is_file():
            with atomic_path(output / name) as tmp:
                shutil.copyfile(model_dir / name, tmp)
    if (model_dir / ASSETS).is_dir():
        shutil.copytree(model_dir / ASSETS, output / ASSETS, dirs_exist_ok=True)
    atomic_write_json(output / MANIFEST, {
        "graphs": GRAPHS,
        "opset": OPSET,
        "object2vec_version": __version__,
        "torch_version": torch.__version__,
        "inputs": "tokens (batch, length) int64, padded with any valid id beyond lengths[b]; lengths (batch,) int64 >= 1",
        "scores": "cosine of the two embeddings (batch, 1)" if not net.hp.has_head
        else "regression value (batch, 1)" if net.hp.is_regression else "softmax probabilities (batch, num_classes)",
    })  # fmt: skip
    return output


def _example(hp: Hyperparameters) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Small inputs of both sides: batch 2, length 3 (the axes are declared dynamic)."""
    out = []
    for side in (0, 1):
        cfg = hp.encoder(side)
        tokens = torch.randint(0, cfg.vocab_size, (2, 3), generator=torch.Generator().manual_seed(side))
        out.append((tokens, torch.tensor([3, 2])))
    return out


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], names: tuple[str, ...], output_name: str, path: Path) -> None:
    axes: dict[str, dict[int, str]] = {}
    for name in names:
        suffix = name[-1] if name[-1].isdigit() else ""
        axes[name] = {0: "batch", 1: f"length{suffix}"} if name.startswith("tokens") else {0: "batch"}
    axes[output_name] = {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; see the module docstring
        torch.onnx.export(module, args, str(tmp), input_names=list(names), output_names=[output_name],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Serving the exported graphs


class _Exported:
    """What :class:`Predictor` needs of a model besides its network: hyperparameters and text codec."""

    def __init__(self, folder: Path, hp: Hyperparameters):
        self._text = load_text(folder, hp)


class OnnxPredictor(Predictor):
    """:class:`Predictor` whose scores and embeddings come from the exported ONNX graphs (onnxruntime)."""

    def __init__(self, folder: str | Path, batch_size: int = BATCH_SIZE, threads: int = 0, normalize: bool = False):
        ort = require("onnxruntime", "--runtime onnx")
        folder = Path(folder)
        missing = [name for name in GRAPHS.values() if not (folder / name).is_file()]
        if missing:
            raise ModelFormatError(
                f"{folder}: has no {', '.join(missing)}; expected a folder written by 'object2vec export MODEL --format onnx -o DIR'"
            )
        config = read_config(folder)
        self.hp = Hyperparameters.from_dict(config.get("hyperparameters", {})).resolve()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = {
            key: ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
            for key, name in GRAPHS.items()
        }
        from ..data.pairs import Schema

        self.model: Any = _Exported(folder, self.hp)
        self.net: Any = None  # no PyTorch network: the sessions above answer
        self.schema = Schema.from_hyperparameters(self.hp)
        self.device = torch.device("cpu")
        self.batch_size = batch_size
        self.normalize = normalize

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", batch_size: int = BATCH_SIZE, normalize: bool = False) -> OnnxPredictor:
        if device not in ("cpu", "auto"):
            raise Object2VecError(f"--runtime onnx runs on the CPU (onnxruntime's CPU provider); got --device {device}")
        return cls(path, batch_size, normalize=normalize)

    def scores(self, data: Any) -> np.ndarray:
        out = [
            self.sessions["scorer"].run(None, {**_padded(data.in0, idx, "0"), **_padded(data.in1, idx, "1")})[0]
            for idx in self._chunks(len(data))
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.output_width["scores"]), np.float32)

    def embeddings(self, data: Any, side: str) -> np.ndarray:
        packed = data.in0 if side == "in0" else data.in1
        session = self.sessions["encoder0" if side == "in0" else "encoder1"]
        out = [session.run(None, _padded(packed, idx, ""))[0] for idx in self._chunks(len(packed))]
        if not out:
            return np.zeros((0, self.hp.enc_dim), np.float32)
        vectors = np.concatenate(out).astype(np.float32)
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _chunks(self, n: int) -> list[np.ndarray]:
        return [np.arange(start, min(start + self.batch_size, n)) for start in range(0, n, self.batch_size)]


def _padded(side: Any, idx: np.ndarray, suffix: str) -> dict[str, np.ndarray]:
    """Rows ``idx`` of a packed side as the graphs' padded ``tokens`` and ``lengths``."""
    tokens, lengths = side.take(idx)
    lengths = lengths.astype(np.int64)
    padded = np.zeros((len(idx), int(lengths.max()) if len(idx) else 1), np.int64)
    padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]] = tokens
    return {f"tokens{suffix}": padded, f"lengths{suffix}": lengths}


def describe(folder: str | Path) -> dict[str, Any]:
    """The export's manifest (``onnx.json``)."""
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: cannot be read ({e})") from None
