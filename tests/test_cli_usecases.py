"""``object2vec index | recommend | cluster | plot`` and ``evaluate --ranking``, end to end on a tiny model."""

from __future__ import annotations

import json
import re
import struct
import sys

import pytest
from click.testing import CliRunner

from object2vec.cli import main
from object2vec.data.synthetic import write_jsonl
from usecases_data import (
    BAND,
    GROUPS,
    item_records,
    one_thread,  # noqa: F401 - autouse fixture
    pairs,
    trained_model,
)

pytest.importorskip("faiss")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("usecases")
    trained_model().save(root / "model")
    return {
        "root": root,
        "model": str(root / "model"),
        "train": str(write_jsonl(pairs(2000, seed=1), root / "train.jsonl")),
        "test": str(write_jsonl(pairs(300, seed=2), root / "test.jsonl")),
        "items": str(write_jsonl(item_records(), root / "items.jsonl")),
        "unlabelled": str(write_jsonl([{"in1": [t]} for t in range(40)], root / "unlabelled.jsonl")),
        "candidates": str(write_jsonl([{"id": "a", "in1": [1, 2]}, {"id": "b", "in1": [51]}], root / "candidates.jsonl")),
    }


@pytest.fixture(scope="module")
def index(files) -> str:
    out = files["root"] / "index"
    result = CliRunner().invoke(main, ["index", "build", files["model"], "--ids", files["items"], "-o", str(out)])
    assert result.exit_code == 0, result.output
    return str(out)


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if re.match(r"\s+\d+\s", line)]


# --------------------------------------------------------------------------------------------------
# index


def test_index_build_writes_the_folder_and_query_by_id_lists_neighbours_without_the_item(files, index):
    assert sorted(p.name for p in (files["root"] / "index").iterdir()) == ["ids.json", "index.faiss", "meta.json"]
    rows = table_rows(run("index", "query", index, "--id", "3", "--k", "5").stdout)
    assert len(rows) == 5 and "3" not in [r[1] for r in rows]
    assert sum(int(r[1]) // BAND == 0 for r in rows) >= 4  # item 3's neighbours are its own group's items


def test_index_build_over_the_vocabulary_with_hnsw_reports_recall_and_exports_embeddings(files):
    out = files["root"] / "hnsw"
    result = run(
        "index", "build", files["model"], "--side", "in1", "--kind", "hnsw", "-o", str(out),
        "--npy", str(files["root"] / "emb.npy"), "--projector", str(files["root"] / "projector"),
    )  # fmt: skip
    recall = float(re.search(r"recall@10 against exact search on 90 sampled items: ([\d.]+)", result.stdout).group(1))
    assert recall >= 0.9
    assert (files["root"] / "emb.npy").is_file() and json.loads((files["root"] / "emb.ids.json").read_text()) == list(range(90))
    assert len((files["root"] / "projector" / "vectors.tsv").read_text().splitlines()) == 90
    summary = json.loads(run("index", "build", files["model"], "--side", "in1", "--kind", "ivf", "-o", str(out), "--json").stdout)
    assert summary["kind"] == "ivf" and 0 <= summary["recall@10"] <= 1 and summary["items"] == 90


def test_index_query_by_tokens_finds_the_same_item_first(index):
    answer = json.loads(run("index", "query", index, "--tokens", "42", "--k", "3", "--json").stdout)
    assert answer["query"] == "42" and answer["neighbors"][0]["id"] == 42
    assert answer["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_index_query_with_an_input_file_answers_every_item(files, index):
    lines = run("index", "query", index, "--input", files["unlabelled"], "--k", "2", "--json").stdout.splitlines()
    assert len(lines) == 40 and all(len(json.loads(line)["neighbors"]) == 2 for line in lines)


def test_an_unknown_id_is_one_clear_error(index):
    result = run("index", "query", index, "--id", "no-such-item", code=2)
    assert result.stderr == "error: id 'no-such-item' is not in the index (80 ids, e.g. 0, 1, 2)\n"


def test_k_larger_than_the_catalogue_is_a_note_not_an_error(index):
    result = run("index", "query", index, "--id", "3", "--k", "500")
    assert "note: k=500 is more than the 79 other items in the index" in result.stderr
    assert len(table_rows(result.stdout)) == 79


def test_a_corrupt_index_file_is_one_clear_error(files, tmp_path):
    out = tmp_path / "index"
    run("index", "build", files["model"], "--side", "in1", "-o", str(out))
    (out / "index.faiss").write_bytes(b"\x00" * 64)
    result = run("index", "query", str(out), "--id", "1", code=2)
    assert result.stderr.startswith(f"error: {out / 'index.faiss'}: cannot be read (")
    assert "rebuild it with 'object2vec index build'" in result.stderr


def test_index_query_needs_exactly_one_kind_of_query(index):
    assert "give exactly one of --id, --tokens or --input" in run("index", "query", index, code=2).stderr
    assert "exactly one" in run("index", "query", index, "--id", "1", "--tokens", "1", code=2).stderr


def test_a_missing_faiss_names_the_extra_to_install(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    result = run("index", "build", files["model"], "--side", "in1", "-o", str(tmp_path / "i"), code=2)
    assert "pip install 'object2vec[search]'" in result.stderr and len(result.stderr.splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# recommend and evaluate --ranking


def test_recommend_prints_the_best_items_with_their_log_odds(files):
    result = run("recommend", files["model"], "--in0", "3", "--k", "5")
    assert result.stdout.splitlines()[0].split() == ["rank", "id", "log-odds"]
    assert len(table_rows(result.stdout)) == 5


def test_recommend_excludes_items_seen_in_the_training_pairs(files):
    best = json.loads(run("recommend", files["model"], "--in0", "3", "--k", "90", "--json").stdout)
    fresh = json.loads(
        run("recommend", files["model"], "--in0", "3", "--k", "90", "--exclude-seen", files["train"], "--json").stdout
    )
    seen = {r["in1"][0] for r in pairs(2000, seed=1) if r["in0"] == [3]}
    assert seen and not seen & {r["id"] for r in fresh}
    assert len(fresh) == len(best) - len(seen)


def test_recommend_ranks_a_candidates_file_and_refuses_an_empty_one(files, tmp_path):
    ranked = json.loads(
        run("recommend", files["model"], "--in0", "3", "--candidates", files["candidates"], "--k", "2", "--json").stdout
    )
    assert {r["id"] for r in ranked} == {"a", "b"}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run("recommend", files["model"], "--in0", "3", "--candidates", str(empty), code=2)
    assert f"{empty}: no items" in result.stderr


def test_recommend_for_an_unknown_in0_is_a_data_error(files):
    result = run("recommend", files["model"], "--in0", "999", code=2)
    assert "in0 query: in0: token 0 is 999, not less than enc0_vocab_size=90" in result.stderr


def test_evaluate_ranking_reports_hits_ndcg_and_mrr(files):
    metrics = json.loads(run("evaluate", files["model"], files["test"], "--ranking", "--k", "10", "--json").stdout)
    assert {"hits@10", "ndcg@10", "mrr", "queries", "positives", "candidates", "skipped", "ties"} <= set(metrics)
    assert metrics["hits@10"] >= 0.9 and metrics["ties"] == "pessimistic"
    table = run("evaluate", files["model"], files["test"], "--ranking", "--k", "5", "--exclude-seen", files["train"]).stdout
    assert re.search(r"^hits@5\s+[\d.]+$", table, re.M) and re.search(r"^ties\s+pessimistic$", table, re.M)


# --------------------------------------------------------------------------------------------------
# cluster and plot


def test_cluster_recovers_the_groups_and_writes_assignments(files, tmp_path):
    out = tmp_path / "clusters.jsonl"
    result = run("cluster", files["model"], files["items"], "--k", str(GROUPS), "-o", str(out))
    ari = float(re.search(r"adjusted_rand\s+([\d.]+)", result.stdout).group(1))
    assert ari > 0.8 and re.search(r"silhouette\s+[-\d.]+", result.stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and {"id", "cluster"} == set(rows[0])


def test_cluster_without_labels_reports_the_silhouette_only(files):
    summary = json.loads(run("cluster", files["model"], files["unlabelled"], "--k", "4", "--json").stdout)
    assert summary["adjusted_rand"] is None and summary["silhouette"] is not None and sum(summary["sizes"]) == 40


def test_cluster_with_more_clusters_than_items_is_refused(files):
    assert "k: 41 clusters for 40 items" in run("cluster", files["model"], files["unlabelled"], "--k", "41", code=2).stderr


def test_plot_writes_a_png_map(files, tmp_path):
    out = tmp_path / "map.png"
    result = run("plot", files["model"], files["items"], "-o", str(out), "--method", "pca", "--title", "Items")
    assert "coloured by label" in result.stdout
    assert struct.unpack(">II", out.read_bytes()[16:24]) == (1200, 900)


def test_plot_by_cluster_with_names_from_a_tsv(files, tmp_path):
    names = tmp_path / "names.tsv"
    names.write_text("".join(f"{t}\tmovie {t}\n" for t in range(40)) + "unknown-id\tignored\n")
    out = tmp_path / "map.svg"
    run(
        "plot",
        files["model"],
        files["unlabelled"],
        "-o",
        str(out),
        "--method",
        "pca",
        "--color-by",
        "cluster",
        "--k",
        "3",
        "--names",
        str(names),
    )
    assert "cluster 0" in out.read_text()


def test_plot_by_label_needs_labels(files, tmp_path):
    result = run("plot", files["model"], files["unlabelled"], "-o", str(tmp_path / "m.png"), "--color-by", "label", code=2)
    assert 'the items have no "label"' in result.stderr


# --------------------------------------------------------------------------------------------------
# item files


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"in1": [1, 2]}'], ':1: id: missing; an item whose in1 is not one token id or a text needs an "id"'),
        (['{"id": "x", "in1": [1]}', '{"id": "x", "in1": [2]}'], ":2: id: 'x' was already given to a different in1 at "),
        (['{"in1": [1], "label": "a"}', '{"in1": [2]}'], ":2: label: missing, while 1 other items have one"),
        (['{"in1": [1]}', "{not json"], ":2: not valid JSON"),
        (['{"in1": [90]}'], ":1: in1: token 0 is 90, not less than enc1_vocab_size=90"),
        (['{"in0": [1], "in1": [2]}'], "the records carry both in0 and in1; choose a side (--side in0 or --side in1)"),
    ],
)
def test_item_file_problems_name_the_line(files, tmp_path, lines, message):
    data = tmp_path / "items.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result = run("cluster", files["model"], str(data), "--k", "1", code=2)
    assert message in result.stderr


def test_an_item_listed_twice_alike_is_kept_once(files, tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text('{"in1": [1], "label": "a"}\n{"in1": [1], "label": "a"}\n{"in1": [2], "label": "b"}\n')
    assert json.loads(run("cluster", files["model"], str(data), "--k", "2", "--json").stdout)["items"] == 2
