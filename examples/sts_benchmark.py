"""STS Benchmark: sentence similarity from raw text and GloVe with Object2Vec, beside two baselines.

The STS Benchmark pairs English sentences with a similarity score from 0 to 5 (5,749 train, 1,500 dev,
1,379 test pairs). This script runs the whole path a user would take, in one process:

1. ``object2vec prepare`` (its Python form): tokenize the tab-separated files (``csv.QUOTE_NONE``:
   quote characters are text there), build one vocabulary for both sides from sts-train plus the
   most frequent words of the vector file, and keep those words' GloVe rows;
2. train Object2Vec as a **regression** on the 0-5 score (the metric is a correlation with a graded
   score; binning it into classes would throw the order of the grades away), with the pretrained
   rows as the token table, and select among a few candidates by sts-dev Spearman (early stopping
   also watches sts-dev);
3. score sts-test two ways: the model's pair scores, and the cosine of the two sentences' embeddings,
   both sentences through the same encoder (as the AWS sentence-similarity notebook did);
4. compute two baselines on the same data in the same run: the cosine of averaged GloVe vectors
   (same tokenizer, same vector file) and a TF-IDF cosine fitted on the sts-train sentences.

Every number is Spearman and Pearson correlation x100 against the gold scores.

Run (needs ``pip install -e '.[examples]'`` for scikit-learn and scipy)::

    python examples/sts_benchmark.py --data-dir ../shared/data/stsbenchmark \\
        --vectors ../shared/data/glove/glove.6B.50d.top100k.txt.gz --out sts_output

The data is read where it is; nothing from it is copied into the repository (``--out`` holds the
prepared files, the models and ``results.json``). See ``docs/sts_benchmark.md`` for the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from object2vec import Object2Vec, reporting
from object2vec.text.auxiliary import VectorFile
from object2vec.text.prepare import PrepareOptions, Table, prepare
from object2vec.text.tokenize import DefaultTokenizer

SPLITS = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}
COLUMNS = Table(left=5, right=6, label=4, format="tsv", quoting=False, header=False)  # genre, file, year, id, score, s1, s2

# Shared by every candidate: mean-pooled token vectors (pooled_embedding forces the token size to
# enc_dim, so enc_dim is the vector size), one token table for both sides, and a symmetric
# comparator, because similarity does not depend on which sentence comes first.
BASE = {
    "enc0_network": "pooled_embedding",
    "tied_token_embedding_weight": True,
    "comparator_list": "hadamard, abs_diff",
    "output_layer": "mean_squared_error",
    "mlp_activation": "tanh",
    "mlp_layers": 1,
    "mlp_dim": 128,
    "learning_rate": 0.001,
    "mini_batch_size": 32,
    "epochs": 20,
    "early_stopping_patience": 3,
    "early_stopping_tolerance": 0.001,
}
IDENTITY_DIMS = 450  # random dimensions appended to each GloVe vector by the "glove+identity" candidate
# The candidates that sts-dev chooses between. Fine-tuning the GloVe rows
# (freeze_pretrained_embedding=False) beats keeping them frozen, SageMaker's default, by about 8 points.
CANDIDATES = {
    "glove-frozen": {"enc0_freeze_pretrained_embedding": True},
    "glove-tuned": {"enc0_freeze_pretrained_embedding": False},
    "glove+identity": {"enc0_freeze_pretrained_embedding": False, "enc0_pretrained_embedding_file": "vectors_identity.txt.gz"},
}


@dataclass
class Split:
    """Raw sentences and gold scores of one STS file."""

    left: list[str]
    right: list[str]
    gold: np.ndarray


def read_split(path: Path) -> Split:
    left, right, gold = [], [], []
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            left.append(row[5])
            right.append(row[6])
            gold.append(float(row[4]))
    return Split(left, right, np.asarray(gold))


def correlations(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson) x100."""
    from scipy.stats import pearsonr, spearmanr

    return 100 * float(spearmanr(scores, gold)[0]), 100 * float(pearsonr(scores, gold)[0])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


# --------------------------------------------------------------------------------------------------
# Baselines


def averaged_vectors_baseline(split: Split, vectors: Path) -> np.ndarray:
    """Cosine of the mean vectors of each sentence's words found in the vector file (0 if none).

    Words are the default tokenizer's tokens that hold a letter or digit: punctuation vectors would
    pull every average toward the same point (with them this baseline scores about 4 points lower).
    """
    tokenize = DefaultTokenizer()

    def words_of(text: str) -> list[str]:
        return [t for t in tokenize(text) if any(c.isalnum() for c in t)]

    left, right = [words_of(t) for t in split.left], [words_of(t) for t in split.right]
    words = {w for sentence in left + right for w in sentence}
    vf = VectorFile(vectors)
    table = dict(vf.scan(lambda w, _k: w in words))

    def mean(tokens: list[str]) -> np.ndarray:
        found = [table[t] for t in tokens if t in table]
        return np.mean(found, axis=0) if found else np.zeros(vf.dim, np.float32)

    return cosine(np.stack([mean(t) for t in left]), np.stack([mean(t) for t in right]))


def tfidf_baseline(train: Split, split: Split) -> np.ndarray:
    """Cosine of TF-IDF vectors (scikit-learn defaults) fitted on the sts-train sentences."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer().fit(train.left + train.right)
    a, b = tfidf.transform(split.left), tfidf.transform(split.right)  # rows are L2-normalised
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


# --------------------------------------------------------------------------------------------------
# Object2Vec


def model_scores(model: Object2Vec, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Pair scores (averaged over both orders) and the cosine of the two sentences' enc0 embeddings."""
    forward = model.predict([{"in0": a, "in1": b} for a, b in zip(split.left, split.right, strict=True)])[:, 0]
    backward = model.predict([{"in0": b, "in1": a} for a, b in zip(split.left, split.right, strict=True)])[:, 0]
    embeddings = model.embed(in0=split.left), model.embed(in0=split.right)  # one encoder for both sentences
    return (forward + backward) / 2, cosine(*embeddings)


def add_identity_dimensions(source: Path, target: Path, dims: int, seed: int) -> int:
    """Write ``source`` (GloVe text) with ``dims`` random N(0, 0.1) values appended to every vector.

    Mean pooling blurs which words two sentences share: in 50 dimensions a shared rare word barely
    moves the averages. Random high-dimensional vectors are nearly orthogonal, so each word gets its
    own direction and the hadamard comparator sees word overlap (the signal TF-IDF uses), while the
    GloVe part still relates different words. Returns the new dimension.
    """
    import gzip

    rng = np.random.default_rng(seed)
    vf = VectorFile(source)
    with gzip.open(target, "wt", encoding="utf-8", compresslevel=1) as fh:
        for word, vector in vf.scan(lambda _w, _k: True):
            extra = rng.normal(0.0, 0.1, dims).astype(np.float32)
            fh.write(word + " " + " ".join(f"{x:.5g}" for x in np.concatenate([vector, extra]).tolist()) + "\n")
    return vf.dim + dims


def swapped(path: Path) -> list[dict[str, Any]]:
    """Each training pair in both orders: similarity is symmetric, so this doubles the data for free."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return records + [{"label": r["label"], "in0": r["in1"], "in1": r["in0"]} for r in records]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with sts-train.csv, sts-dev.csv, sts-test.csv")
    parser.add_argument("--vectors", type=Path, required=True, help="GloVe text vectors (.gz ok)")
    parser.add_argument(
        "--out", type=Path, default=Path("sts_output"), help="folder for prepared data, models, results [sts_output]"
    )
    parser.add_argument(
        "--vector-words", type=int, default=50_000, help="frequent vector-file words added to the vocabulary [50000]"
    )
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"which candidates to train [{','.join(CANDIDATES)}]")
    parser.add_argument("--epochs", type=int, default=BASE["epochs"], help=f"maximum epochs per candidate [{BASE['epochs']}]")
    parser.add_argument("--seed", type=int, default=0, help="seed of every candidate [0]")
    args = parser.parse_args(argv)
    reporting.configure_cli_logging(verbose=False)
    started = time.perf_counter()

    data = args.out / "data"
    options = PrepareOptions(
        **{name: args.data_dir / file for name, file in SPLITS.items()},
        shared_vocab=True,
        vectors=args.vectors,
        vector_words=args.vector_words,
    )
    report = prepare(data, COLUMNS, options)
    print("\n".join(report.lines()[: -1 - len(report.hyperparameters)]), flush=True)
    raw = {name: read_split(args.data_dir / file) for name, file in SPLITS.items()}
    dims = {"vectors.txt.gz": VectorFile(data / "vectors.txt.gz").dim}
    dims["vectors_identity.txt.gz"] = add_identity_dimensions(
        data / "vectors.txt.gz", data / "vectors_identity.txt.gz", IDENTITY_DIMS, args.seed
    )

    print("\ncandidate             epochs  sts-dev Spearman (pair score / embedding cosine)", flush=True)
    train = swapped(data / "train.jsonl")
    results: dict[str, Any] = {"candidates": {}}
    best_name, best_model, best_dev = None, None, -np.inf
    for name in args.candidates.split(","):
        hp = {**report.hyperparameters, **BASE, **CANDIDATES[name], "epochs": args.epochs}
        hp["enc_dim"] = hp["enc0_token_embedding_dim"] = dims[hp["enc0_pretrained_embedding_file"]]
        t0 = time.perf_counter()
        model = Object2Vec(seed=args.seed, device="cpu", **hp).fit(train, validation=data / "validation.jsonl", auxiliary=data)
        pair, cos = model_scores(model, raw["validation"])
        dev = correlations(pair, raw["validation"].gold)[0], correlations(cos, raw["validation"].gold)[0]
        results["candidates"][name] = {"hyperparameters": hp, "best_epoch": model.metrics_["best_epoch"], "dev_spearman": dev}
        print(
            f"{name:<22}{model.metrics_['best_epoch']:>3}/{len(model.history_):<3}  {dev[0]:6.1f} / {dev[1]:5.1f}   ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        if dev[0] > best_dev:
            best_name, best_model, best_dev = name, model, dev[0]
    assert best_model is not None
    best_model.save(args.out / "model")

    test = raw["test"]
    pair, cos = model_scores(best_model, test)
    rows = {
        f"Object2Vec pair score ({best_name})": correlations(pair, test.gold),
        f"Object2Vec embedding cosine ({best_name})": correlations(cos, test.gold),
        "baseline: averaged GloVe cosine": correlations(averaged_vectors_baseline(test, args.vectors), test.gold),
        "baseline: TF-IDF cosine (fit on sts-train)": correlations(tfidf_baseline(raw["train"], test), test.gold),
    }
    print(f"\nsts-test ({len(test.gold):,} pairs)                     Spearman  Pearson")
    for label, (rho, r) in rows.items():
        print(f"{label:<46}{rho:8.1f} {r:8.1f}")
    results.update(selected=best_name, test={k: {"spearman": v[0], "pearson": v[1]} for k, v in rows.items()})
    results["seconds"] = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nmodel in {args.out / 'model'}, numbers in {args.out / 'results.json'} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
