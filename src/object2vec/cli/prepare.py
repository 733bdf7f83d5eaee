"""``object2vec prepare``: raw text pairs to Object2Vec JSON Lines, a vocabulary and suggested hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..text.prepare_options import LABEL_TYPES, MAX_SEQ_LEN, TASKS, TOKEN_WEIGHTS, PrepareOptions
from .base import friendly_errors, main


def _subwords(value: str | None) -> tuple[int, int] | None:
    from ..text.features import parse_subwords

    try:
        return parse_subwords(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


DEFAULTS = PrepareOptions()  # every flag below that sets an option takes its default from here


@main.command()
@click.option("--train", type=click.Path(path_type=Path), help="Raw training pairs; the vocabulary is built from these.")
@click.option(
    "--validation", type=click.Path(path_type=Path), help="Raw validation pairs (encoded with the training vocabulary)."
)
@click.option("--test", type=click.Path(path_type=Path), help="Raw test pairs (encoded with the training vocabulary).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option("--left", required=True, help="Column of the in0 text: a name, or a 0-based index.")
@click.option("--right", help="Column of the in1 text: a name, or a 0-based index (--task pairs).")
@click.option("--label", help="Column of the label: a name, or a 0-based index. Leave out for unlabelled pairs.")
@click.option(
    "--format", "fmt", default="auto", type=click.Choice(["auto", "csv", "tsv", "jsonl"]), help="auto: from the extension."
)
@click.option("--no-quoting", is_flag=True, help="Quote characters are text (csv.QUOTE_NONE), as in STS Benchmark files.")
@click.option(
    "--header/--no-header", default=None, help="Whether CSV/TSV files start with a header row [default: if a column is named]."
)
@click.option(
    "--label-type",
    default=DEFAULTS.label_type,
    type=click.Choice(LABEL_TYPES),
    help="auto: numbers if one label is fractional, else classes.",
)
@click.option(
    "--tokenizer-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Hugging Face tokenizer.json (needs object2vec[text]).",
)
@click.option(
    "--lowercase/--no-lowercase",
    default=DEFAULTS.lowercase,
    help="Lowercase before splitting [default: yes, no with --tokenizer-file].",
)
@click.option(
    "--min-count",
    default=DEFAULTS.min_count,
    type=click.IntRange(1),
    help="Keep words seen at least this often in training.",
)
@click.option(
    "--max-size", default=DEFAULTS.max_size, type=click.IntRange(2), help="At most this many ids, the unknown token's included."
)
@click.option("--shared-vocab", is_flag=True, help="One vocabulary for both sides (vocab.json) instead of one per side.")
@click.option(
    "--unknown-token",
    default=DEFAULTS.unknown_token,
    help="The word of id 0, which stands for every out-of-vocabulary token.",
)
@click.option(
    "--vectors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GloVe/word2vec text vectors (.gz ok); vocabulary rows go to vectors.txt.gz.",
)
@click.option(
    "--vector-words",
    default=DEFAULTS.vector_words,
    type=click.IntRange(0),
    help="Also add the first N words of --vectors to the vocabulary.",
)
@click.option(
    "--length-percentile",
    default=DEFAULTS.length_percentile,
    type=click.FloatRange(1, 100),
    help="Suggested max_seq_len: this percentile of training lengths.",
)
@click.option(
    "--max-seq-len",
    default=DEFAULTS.max_seq_len,
    type=click.IntRange(1, MAX_SEQ_LEN),
    help="Suggest this max_seq_len instead of the percentile.",
)
@click.option(
    "--vocab-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Apply the tokenizer, vocabulary and labels of an earlier output folder.",
)
@click.option(
    "--task",
    default=DEFAULTS.task,
    type=click.Choice(TASKS),
    help="[extension] pairs: two texts. classify: one text and its class (in1 = [0], softmax). label-pairs: one text "
    "paired with its label token (StarSpace; negatives drawn in training; labels.jsonl for predict --labels).",
)
@click.option(
    "--word-ngrams",
    default=DEFAULTS.word_ngrams,
    type=click.IntRange(1, 10),
    help="[extension] Add hashed word n-grams up to this length (fastText's -wordNgrams).",
)
@click.option(
    "--subwords",
    metavar="MIN,MAX",
    callback=lambda _ctx, _param, value: _subwords(value),
    help="[extension] Add hashed character n-grams of MIN..MAX characters (fastText's -minn/-maxn).",
)
@click.option(
    "--buckets",
    default=DEFAULTS.buckets,
    type=click.IntRange(1),
    help="[extension] Ids for the hashed n-grams and subwords, after the vocabulary [default: 200000 when either is on].",
)
@click.option(
    "--token-weights",
    default=DEFAULTS.token_weights,
    type=click.Choice(TOKEN_WEIGHTS),
    help="[extension] Per-token weights (in0_weights) for a weighted mean: inline: StarSpace's word:weight; idf: from the "
    "training texts.",
)
@friendly_errors
def prepare(
    output: Path, left: str, right: str | None, label: str | None, fmt: str, no_quoting: bool, header: bool | None,
    **options: Any,
) -> None:  # fmt: skip
    """Tokenize raw text pairs (CSV, TSV, JSON Lines) into Object2Vec JSON Lines plus vocab.json.

    Prints the OOV rate and truncation counts of each split and the hyperparameters to train with:

    \b
      object2vec prepare --train train.csv --validation dev.csv --left question1 --right question2 --label is_duplicate -o data/
      object2vec train --train data/train.jsonl --validation data/validation.jsonl --auxiliary data \\
          --hyperparameters data/hyperparameters.json -o model/
    """
    from ..text.prepare import Table, parse_column
    from ..text.prepare import prepare as run

    table = Table(parse_column(left), parse_column(right), parse_column(label), fmt, not no_quoting, header)  # type: ignore[arg-type]
    report = run(output, table, PrepareOptions(**options))  # every other flag is a PrepareOptions field
    for line in report.lines():
        click.echo(line)
    splits = {s.name for s in report.splits}
    if "train" in splits:
        val = f" --validation {output / 'validation.jsonl'}" if "validation" in splits else ""
        click.echo(
            f"train with: object2vec train --train {output / 'train.jsonl'}{val} --auxiliary {output} "
            f"--hyperparameters {output / 'hyperparameters.json'} -o MODEL_DIR"
        )
