"""AG News: news classification with Object2Vec (SageMaker's settings, and with the extensions), beside
fastText and TF-IDF + logistic regression, on the same split in the same run.

Only AG News' test file is at hand (7,600 articles, 4 classes: World, Sports, Business, Sci/Tech),
so it is split deterministically, by position: every fifth row (rows 4, 9, 14, ... counting from 0)
is the test split (1,520); of the other rows, every tenth (their 9, 19, 29, ...) is the validation
split (608), and the rest is training (5,472). A text is the title and the description joined by a
space (the backslashes AG News has for line breaks become spaces).

Runs, each timed (wall clock, 2 threads) and scored on the test split:

1. **object2vec, SageMaker's settings**: ``object2vec prepare --task classify`` (one text, in1 a
   constant token, softmax over the 4 classes), then pooled_embedding, enc_dim 256, row_sparse, one
   256-unit relu MLP layer, mini_batch_size 32, learning_rate 0.0004, 10 epochs, early stopping on
   validation (patience 3): the issue's configuration, no extension.
2. **object2vec with the extensions**: ``prepare --word-ngrams 2 --subwords 3,5 --buckets 500000
   --token-weights idf`` (hashed bigrams and character 3-5-grams, IDF-weighted mean:
   ``enc0_pooling=weighted_mean``), enc_dim 100, no MLP layer, dropout 0.3, learning_rate 0.005,
   2 epochs (what early stopping on validation chose for every seed: with patience 1 it ran a
   third epoch only to see the second was best); ``--seeds`` seeds (3 by default), their mean and each.
3. **object2vec label pairs** (``--label-pairs``): StarSpace's workflow on the same features:
   ``prepare --task label-pairs`` (document-label pairs, 3 negatives drawn per pair, distinct and
   grouped) and the 4 labels scored per document (``object2vec.retrieval.labels``).
4. **fastText** (its own virtual environment, ``benchmarks/fasttext_runner.py``; skipped with a note
   when it cannot be installed) on the same tokens (object2vec's tokenizer, joined by spaces): dim
   100, lr 0.5, 10 epochs, 2 threads, with word bigrams (200,000 buckets), and with bigrams and
   character 3-5-grams (500,000 buckets, object2vec's features).
5. **TF-IDF + logistic regression** (scikit-learn): word 1-2-grams, sublinear TF; C from 1, 10 and
   100 by validation accuracy; the chosen fit's time.

object2vec's time is ``prepare`` (tokenizing, hashing, IDF, writing JSON Lines) plus ``fit``
(reading the JSON Lines, without object2vec's binary cache, as a first run does; training; one
validation pass an epoch); fastText's is tokenizing the same texts with the
same tokenizer into its text files (its "prepare") plus ``train_supervised`` (reading its file,
hashing its n-grams, training). Both start from the same raw text. Run (``pip install -e '.[examples]'`` for scikit-learn)::

    python examples/text_classification.py --data-dir ../shared/data/ag_news --out ag_output

The data is read where it is; ``--out`` holds the split, the prepared folders and ``results.json``.
See ``docs/text_classification.md`` for the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from object2vec import Object2Vec, reporting
from object2vec.retrieval.labels import predict_labels
from object2vec.text.prepare import Table, prepare
from object2vec.text.tokenize import DefaultTokenizer

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from fasttext_runner import fasttext_python, train_fasttext

THREADS = 2
ONE_TEXT = Table(left="text", right=None, label="label")
FEATURES = {"word_ngrams": 2, "subwords": (3, 5), "buckets": 500_000, "token_weights": "idf"}
SAGEMAKER = {
    "enc_dim": 256, "token_embedding_storage_type": "row_sparse", "mlp_layers": 1, "mlp_dim": 256,
    "mlp_activation": "relu", "mini_batch_size": 32, "epochs": 10,
}  # fmt: skip
EXTENDED = {
    "enc_dim": 100, "token_embedding_storage_type": "row_sparse", "mlp_layers": 0, "dropout": 0.3,
    "learning_rate": 0.005, "mini_batch_size": 32, "epochs": 2,
}  # fmt: skip
LABEL_PAIRS = {**EXTENDED, "mini_batch_size": 128, "epochs": 3}  # 32 documents, each with its 3 negatives
FASTTEXT = {
    "bigrams": {"dim": 100, "lr": 0.5, "epoch": 10, "wordNgrams": 2, "bucket": 200_000},
    "bigrams+subwords": {"dim": 100, "lr": 0.5, "epoch": 10, "wordNgrams": 2, "minn": 3, "maxn": 5, "bucket": 500_000},
}


def split_rows(data_dir: Path) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """The deterministic split of the module docstring: ``{split: [(text, class name), ...]}``."""
    names = [line.strip() for line in (data_dir / "classes.txt").read_text().splitlines() if line.strip()]
    with open(data_dir / "test.csv", encoding="utf-8", newline="") as fh:
        rows = [(f"{title} {body}".replace("\\", " "), names[int(label) - 1]) for label, title, body in csv.reader(fh)]
    rest = [r for i, r in enumerate(rows) if i % 5 != 4]
    return {
        "train": [r for j, r in enumerate(rest) if j % 10 != 9],
        "validation": [r for j, r in enumerate(rest) if j % 10 == 9],
        "test": [r for i, r in enumerate(rows) if i % 5 == 4],
    }, names


def write_splits(splits: dict[str, list[tuple[str, str]]], folder: Path) -> None:
    """The raw texts as JSON Lines, object2vec's input (``prepare`` tokenizes them, timed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(folder / f"{name}.jsonl", "w") as jl:
            for text, label in rows:
                jl.write(json.dumps({"text": text, "label": label}) + "\n")


def write_fasttext_files(splits: dict[str, list[tuple[str, str]]], folder: Path) -> float:
    """fastText's input, the same tokens (object2vec's tokenizer joined by spaces); returns its seconds,
    fastText's share of preparing the text, as ``prepare`` is object2vec's: both start from raw text."""
    start = time.perf_counter()
    tokenizer = DefaultTokenizer()
    for name, rows in splits.items():
        with open(folder / f"{name}.ft", "w") as ft:
            for text, label in rows:
                ft.write(f"__label__{label.replace(' ', '_')} " + " ".join(tokenizer(text)) + "\n")
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------------


def prepared(split: Path, out: Path, task: str, features: dict[str, Any]) -> tuple[Path, float]:
    start = time.perf_counter()
    files = {name: split / f"{name}.jsonl" for name in ("train", "validation", "test")}
    prepare(out, ONE_TEXT, **files, task=task, **features)  # type: ignore[arg-type]
    return out, time.perf_counter() - start


def run_object2vec(folder: Path, settings: dict[str, Any], seed: int, label_pairs: bool = False) -> dict[str, Any]:
    hp = {**json.loads((folder / "hyperparameters.json").read_text()), **settings}
    start = time.perf_counter()
    # label pairs are all positives: their validation loss would reward calling every pair positive
    validation = None if label_pairs else folder / "validation.jsonl"
    model = Object2Vec(device="cpu", seed=seed, cache=False, **hp).fit(folder / "train.jsonl", validation, auxiliary=folder)
    seconds = time.perf_counter() - start
    if label_pairs:
        classes = json.loads((folder / "labels.json").read_text())
        names = {i: name for name, i in classes.items()}
        records = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
        best = predict_labels(model, records, folder / "labels.jsonl", k=1)  # records: ids and their IDF weights
        test = float(np.mean([ids[0] == names[r["in1"][0]] for (ids, _), r in zip(best, records, strict=True)]))
    else:
        test = model.evaluate(folder / "test.jsonl")["accuracy"]
    return {"fit_seconds": seconds, "epochs": len(model.history_), "test": test}


def run_tfidf(splits: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = {name: [t for t, _ in rows] for name, rows in splits.items()}
    labels = {name: [y for _, y in rows] for name, rows in splits.items()}
    best: dict[str, Any] = {}
    for c in (1.0, 10.0, 100.0):
        start = time.perf_counter()
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(C=c, max_iter=2000).fit(vectorizer.fit_transform(texts["train"]), labels["train"])
        seconds = time.perf_counter() - start
        validation = model.score(vectorizer.transform(texts["validation"]), labels["validation"])
        if validation > best.get("validation", -1):
            test = model.score(vectorizer.transform(texts["test"]), labels["test"])
            best = {"C": c, "seconds": seconds, "validation": validation, "test": test}
    return best


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with AG News' test.csv and classes.txt")
    parser.add_argument("--out", type=Path, default=Path("ag_output"), help="folder for the split, prepared data, results")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of object2vec with the extensions [3]")
    parser.add_argument("--label-pairs", action="store_true", help="also train the label-pair (StarSpace) model")
    parser.add_argument("--skip-fasttext", action="store_true")
    parser.add_argument("--epochs", type=int, help="cap every object2vec run's epochs (a smoke test)")
    args = parser.parse_args(argv)
    reporting.configure_cli_logging(verbose=False)
    import torch

    torch.set_num_threads(THREADS)
    notes = []
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        notes.append(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: every time is inflated alike")
    splits, _ = split_rows(args.data_dir)
    write_splits(splits, args.out / "split")
    fasttext_prepare = write_fasttext_files(splits, args.out / "split")
    cap = {"epochs": args.epochs} if args.epochs else {}
    rows: dict[str, dict[str, Any]] = {}

    folder, prep = prepared(args.out / "split", args.out / "plain", "classify", {})
    rows["object2vec, SageMaker settings"] = {**run_object2vec(folder, {**SAGEMAKER, **cap}, 0), "prepare_seconds": prep}
    folder, prep = prepared(args.out / "split", args.out / "features", "classify", FEATURES)
    runs = [run_object2vec(folder, {**EXTENDED, **cap}, seed) for seed in range(args.seeds)]
    rows["object2vec + extensions"] = {
        "test": float(np.mean([r["test"] for r in runs])),
        "test_each": [r["test"] for r in runs],
        "fit_seconds": float(np.mean([r["fit_seconds"] for r in runs])),
        "epochs": [r["epochs"] for r in runs],
        "prepare_seconds": prep,
    }
    if args.label_pairs:
        folder, prep = prepared(args.out / "split", args.out / "label_pairs", "label-pairs", FEATURES)
        run = run_object2vec(folder, {**LABEL_PAIRS, **cap}, 0, label_pairs=True)
        rows["object2vec label pairs + extensions"] = {**run, "prepare_seconds": prep}

    python, why = (None, "fastText skipped (--skip-fasttext)") if args.skip_fasttext else fasttext_python()
    if python is None:
        notes.append(why)
    else:
        tests = {"validation": args.out / "split" / "validation.ft", "test": args.out / "split" / "test.ft"}
        for name, settings in FASTTEXT.items():
            ft = train_fasttext(python, args.out / "split" / "train.ft", tests, {**settings, "thread": THREADS})
            rows[f"fastText, {name}"] = {
                "test": ft["test"], "fit_seconds": ft["seconds"], "prepare_seconds": fasttext_prepare, "settings": settings
            }  # fmt: skip
    tfidf = run_tfidf(splits)
    rows["TF-IDF + logistic regression"] = {"test": tfidf["test"], "fit_seconds": tfidf["seconds"], "C": tfidf["C"]}

    results = {"sizes": {k: len(v) for k, v in splits.items()}, "rows": rows, "notes": notes}
    report(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def report(results: dict[str, Any]) -> None:
    sizes = results["sizes"]
    print(f"\nAG News, {sizes['train']:,} / {sizes['validation']:,} / {sizes['test']:,} articles (train / validation / test)\n")
    print(f"{'run':<40}{'test accuracy':>14}{'prepare s':>11}{'fit s':>8}{'total s':>9}")
    for name, row in results["rows"].items():
        prep = row.get("prepare_seconds", 0.0)
        shown = f"{prep:>11.1f}" if "prepare_seconds" in row else f"{'-':>11}"
        print(f"{name:<40}{row['test']:>14.4f}{shown}{row['fit_seconds']:>8.1f}{prep + row['fit_seconds']:>9.1f}")
        if "test_each" in row:
            print(f"{'':<4}each seed: " + ", ".join(f"{x:.4f}" for x in row["test_each"]))
    for note in results["notes"]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
