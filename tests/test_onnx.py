"""ONNX export: every encoder and the pair scorer give PyTorch's numbers (1e-5, fp32), served or not."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from object2vec import Object2Vec
from object2vec.cli import main
from object2vec.data.synthetic import make_pairs

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from object2vec.serving.onnx import OnnxPredictor, describe, export_onnx
from object2vec.serving.predictor import Predictor

ENCODERS = {
    "pooled_embedding": {},
    "hcnn_even_width": {"enc0_network": "hcnn", "enc0_cnn_filter_width": 4, "enc0_layers": 2},
    "hcnn_odd_width": {"enc0_network": "hcnn", "enc0_cnn_filter_width": 3},
    "bilstm_two_layers": {"enc0_network": "bilstm", "enc0_layers": 2},
}


def _train(tmp_path, tiny, **overrides):
    hp = {**tiny, "epochs": 1, **overrides}
    if overrides.get("enc0_network") in ("hcnn", "bilstm"):
        hp.setdefault("enc1_network", "pooled_embedding")
    data = make_pairs(200, task="regression" if overrides.get("output_layer") == "mean_squared_error" else "classification")
    Object2Vec(**hp).fit(data).save(tmp_path / "model")
    return tmp_path / "model", data


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_exported_encoders_and_scorer_match_pytorch(tmp_path, tiny, encoder):
    model_dir, data = _train(tmp_path, tiny, **ENCODERS[encoder], enc1_network="enc0")
    export_onnx(model_dir, tmp_path / "onnx")
    torch_side, onnx_side = Predictor.load(model_dir, device="cpu"), OnnxPredictor.load(tmp_path / "onnx")
    instances = [{"in0": r["in0"], "in1": r["in1"]} for r in data[:60]]  # lengths 1..10 in one batch: padding exercised
    instances += [{"in0": r["in0"]} for r in data[60:90]] + [{"in1": r["in1"]} for r in data[90:120]]
    for ours, theirs in zip(onnx_side.run(instances), torch_side.run(instances), strict=True):
        (key,) = theirs
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-5, rtol=0)


def test_a_regression_scorer_returns_one_value_per_pair(tmp_path, tiny):
    model_dir, data = _train(tmp_path, tiny, output_layer="mean_squared_error")
    export_onnx(model_dir, tmp_path / "onnx")
    pairs = [{"in0": r["in0"], "in1": r["in1"]} for r in data[:20]]
    ours = np.stack([r["scores"] for r in OnnxPredictor.load(tmp_path / "onnx").run(pairs)])
    theirs = np.stack([r["scores"] for r in Predictor.load(model_dir, device="cpu").run(pairs)])
    assert ours.shape == (20, 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_a_contrastive_model_exports_a_cosine_scorer_and_normalized_embeddings(tmp_path, tiny):
    model_dir, data = _train(tmp_path, tiny, objective="contrastive")
    export_onnx(model_dir, tmp_path / "onnx")
    instances = [{"in0": r["in0"], "in1": r["in1"]} for r in data[:20]] + [{"in1": r["in1"]} for r in data[:5]]
    ours = OnnxPredictor.load(tmp_path / "onnx", normalize=True).run(instances)
    theirs = Predictor.load(model_dir, device="cpu", normalize=True).run(instances)
    assert describe(tmp_path / "onnx")["scores"] == "cosine of the two embeddings (batch, 1)"
    for a, b in zip(ours, theirs, strict=True):
        (key,) = b
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(np.stack([r["embeddings"] for r in ours[20:]]), axis=1), 1.0, rtol=1e-5)


def test_the_export_command_writes_graphs_a_manifest_and_what_serving_needs(tmp_path, tiny):
    model_dir, _ = _train(tmp_path, tiny)
    result = CliRunner().invoke(main, ["export", str(model_dir), "--format", "onnx", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["config.json", "encoder0.onnx", "encoder1.onnx", "metrics.json", "onnx.json", "scorer.onnx"]
    assert describe(tmp_path / "out")["graphs"]["scorer"] == "scorer.onnx"


def test_the_endpoint_serves_the_exported_graphs(tmp_path, tiny):
    from fastapi.testclient import TestClient

    from object2vec.serving.app import ServeSettings, create_app, load_predictor

    model_dir, data = _train(tmp_path, tiny)
    export_onnx(model_dir, tmp_path / "onnx")
    settings = ServeSettings(model_dir=str(tmp_path / "onnx"), runtime="onnx")
    client = TestClient(create_app(load_predictor(settings), settings))
    body = {"instances": [{"in0": data[0]["in0"], "in1": data[0]["in1"]}, {"in0": data[1]["in0"]}]}
    answer = client.post("/invocations", json=body, headers={"Accept": "application/json"}).json()["predictions"]
    expected = Predictor.load(model_dir, device="cpu").run(body["instances"])
    np.testing.assert_allclose(answer[0]["scores"], expected[0]["scores"], atol=1e-5)
    np.testing.assert_allclose(answer[1]["embeddings"], expected[1]["embeddings"], atol=1e-5)


def test_serving_a_model_folder_with_the_onnx_runtime_says_what_to_export(tmp_path, tiny):
    model_dir, _ = _train(tmp_path, tiny)
    result = CliRunner().invoke(main, ["serve", str(model_dir), "--runtime", "onnx"])
    assert result.exit_code == 2
    assert "encoder0.onnx" in result.output and "object2vec export" in result.output


def test_exporting_into_the_model_folder_is_refused(tmp_path, tiny):
    model_dir, _ = _train(tmp_path, tiny)
    result = CliRunner().invoke(main, ["export", str(model_dir), "-o", str(model_dir)])
    assert result.exit_code == 2 and "is the model folder itself" in result.output
