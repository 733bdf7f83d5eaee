"""Tuning configurations: SageMaker's HyperParameterTuningJobConfig read unchanged, every problem reported at once,
and each strategy and scaling type mapped onto Optuna."""

from __future__ import annotations

import json
import math

import pytest

from object2vec.errors import TuningConfigError
from object2vec.tuning import defaults
from object2vec.tuning.parse import read_tuning_config

optuna = pytest.importorskip("optuna")

from object2vec.tuning import space  # noqa: E402

FIXED = {"enc0_max_seq_len": "10", "enc0_vocab_size": "200", "enc0_network": "pooled_embedding"}
REGRESSION = {**FIXED, "output_layer": "mean_squared_error"}

# The shape of SageMaker's documented example (string values, all four range kinds and scalings).
SAGEMAKER_CONFIG = {
    "Strategy": "Bayesian",
    "HyperParameterTuningJobObjective": {"MetricName": "validation:accuracy", "Type": "Maximize"},
    "ResourceLimits": {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 3},
    "ParameterRanges": {
        "CategoricalParameterRanges": [{"Name": "mlp_activation", "Values": ["tanh", "relu"]}],
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
            {"Name": "dropout", "MinValue": "0.5", "MaxValue": "0.99", "ScalingType": "ReverseLogarithmic"},
        ],
        "IntegerParameterRanges": [{"Name": "enc_dim", "MinValue": "16", "MaxValue": "512", "ScalingType": "Auto"}],
    },
    "TrainingJobEarlyStoppingType": "Auto",
    "RandomSeed": 7,
}


def problems_of(source, hyperparameters=FIXED, **kwargs) -> list[str]:
    with pytest.raises(TuningConfigError) as e:
        read_tuning_config(source, hyperparameters, **kwargs)
    return e.value.problems


def test_a_sagemaker_tuning_job_config_file_is_read_unchanged(tmp_path):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(SAGEMAKER_CONFIG))
    config = read_tuning_config(path, FIXED)
    assert (config.strategy, config.objective.metric, config.objective.maximize) == ("Bayesian", "validation:accuracy", True)
    assert (config.max_trials, config.max_parallel, config.early_stopping, config.random_seed) == (20, 3, True, 7)
    assert [(r.name, r.kind, r.low, r.high, r.values, r.scaling) for r in config.ranges] == [
        ("mlp_activation", "Categorical", None, None, ("tanh", "relu"), "Linear"),
        ("learning_rate", "Continuous", 0.0001, 0.1, (), "Logarithmic"),
        ("dropout", "Continuous", 0.5, 0.99, (), "ReverseLogarithmic"),
        ("enc_dim", "Integer", 16, 512, (), "Logarithmic"),
    ]
    assert config.document == SAGEMAKER_CONFIG


def test_a_create_tuning_job_request_brings_its_static_hyperparameters():
    request = {
        "HyperParameterTuningJobName": "o2v",
        "HyperParameterTuningJobConfig": SAGEMAKER_CONFIG,
        "TrainingJobDefinition": {"StaticHyperParameters": {**FIXED, "epochs": "3"}, "RoleArn": "arn:aws:iam::1:role/x"},
    }
    config = read_tuning_config(request, {"epochs": "5"})
    assert config.hyperparameters == {**FIXED, "epochs": "5"}  # the caller's fixed values win


def test_every_problem_of_a_configuration_is_reported_in_one_error():
    bad = {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"MetricName": "validation:mean_squared_error", "Type": "Maximize"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 4},
        "ParameterRanges": {
            "IntegerParameterRanges": [
                {"Name": "enc_dim", "MinValue": "2", "MaxValue": "64"},
                {"Name": "mlp_dims", "MinValue": "8", "MaxValue": "64"},
                {"Name": "epochs", "MinValue": "1", "MaxValue": "10", "ScalingType": "ReverseLogarithmic"},
            ],
            "ContinuousParameterRanges": [
                {"Name": "weight_decay", "MinValue": "0", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
                {"Name": "learning_rate", "MinValue": "0.1", "MaxValue": "0.01"},
                {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "64"},
                {"Name": "output_layer", "MinValue": "0", "MaxValue": "1"},
            ],
        },
        "TrainingJobEarlyStopingType": "Auto",
    }
    problems = problems_of(bad)
    expected = [
        "TrainingJobEarlyStopingType: is not a field of HyperParameterTuningJobConfig; did you mean TrainingJobEarlyStoppingType?",
        "validation:mean_squared_error needs output_layer=mean_squared_error, but the model has output_layer=softmax",
        "validation:mean_squared_error is a loss, so it must be Minimized; got Maximize",
        "enc_dim: MinValue '2' is outside its limits: enc_dim must be an int in [4, 10000]",
        "'mlp_dims' is not an Object2Vec hyperparameter; did you mean mlp_dim?",
        "epochs: ReverseLogarithmic scaling applies to continuous ranges only",
        "weight_decay: Logarithmic scaling needs MinValue > 0; got 0",
        "learning_rate: MinValue 0.1 is above MaxValue 0.01",
        "mini_batch_size takes an int in [1, 10000], not a continuous range; use IntegerParameterRanges",
        "output_layer cannot be tuned: it decides which objective metrics exist",
    ]
    for phrase in expected:
        assert sum(phrase in p for p in problems) == 1, (phrase, problems)
    assert len(problems) == len(expected)


def test_the_error_message_names_the_file_and_lists_each_problem(tmp_path):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({**SAGEMAKER_CONFIG, "Strategy": "Annealing", "RandomSeed": "x"}))
    with pytest.raises(TuningConfigError) as e:
        read_tuning_config(path, FIXED)
    assert str(e.value).splitlines() == [
        f"{path}: 2 tuning configuration problems:",
        "  - Strategy: 'Annealing' is not one of Bayesian, Random, Hyperband, Grid",
        "  - RandomSeed: 'x' is not an integer",
    ]


def test_a_value_that_cannot_train_with_the_fixed_hyperparameters_is_refused_before_any_trial():
    config = {
        **SAGEMAKER_CONFIG,
        "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "rmsprop"]}]},
    }
    (problem,) = problems_of(config, {**FIXED, "token_embedding_storage_type": "row_sparse"})
    assert problem.startswith("ParameterRanges: optimizer=rmsprop cannot train with the fixed hyperparameters: ")
    assert "row_sparse supports optimizer adam, adagrad, sgd" in problem


def test_categorical_values_are_checked_against_the_hyperparameter_table():
    config = {
        **SAGEMAKER_CONFIG,
        "ParameterRanges": {"CategoricalParameterRanges": [{"Name": "mlp_activation", "Values": ["tanh", "gelu", "tanh"]}]},
    }
    assert problems_of(config) == [
        "CategoricalParameterRanges[0] mlp_activation: value 'gelu' is outside its limits: mlp_activation must be one of tanh, relu, linear",
        "CategoricalParameterRanges[0] mlp_activation: value 'tanh' is listed more than once",
    ]


def test_the_objective_must_fit_the_output_layer_and_the_data_given():
    regression = {**SAGEMAKER_CONFIG, "HyperParameterTuningJobObjective": {"MetricName": "test:accuracy", "Type": "Maximize"}}
    assert problems_of(regression, REGRESSION) == [
        "HyperParameterTuningJobObjective.MetricName: test:accuracy needs output_layer=softmax, but the model has "
        "output_layer=mean_squared_error; use validation:mean_squared_error or test:mean_squared_error",
        "HyperParameterTuningJobObjective.MetricName: test:accuracy is measured on the test split, but no test data was given",
    ]


def test_grid_search_takes_categorical_ranges_only_and_runs_each_combination_once():
    assert problems_of({**SAGEMAKER_CONFIG, "Strategy": "Grid"})[0].startswith(
        "ParameterRanges: Grid search takes only CategoricalParameterRanges (as on SageMaker); learning_rate"
    )
    grid = {
        "Strategy": "Grid",
        "HyperParameterTuningJobObjective": SAGEMAKER_CONFIG["HyperParameterTuningJobObjective"],
        "ParameterRanges": {
            "CategoricalParameterRanges": [
                {"Name": "mlp_activation", "Values": ["tanh", "relu"]},
                {"Name": "enc_dim", "Values": ["8", "16", "32"]},
            ]
        },
    }
    assert read_tuning_config(grid, FIXED).max_trials == 6  # MaxNumberOfTrainingJobs is not needed for a grid


def test_hyperband_stops_trials_itself_and_takes_its_epochs_from_the_hyperparameters():
    hyperband = {**SAGEMAKER_CONFIG, "Strategy": "Hyperband"}
    assert problems_of(hyperband) == [
        "TrainingJobEarlyStoppingType: must be Off with the Hyperband strategy, which stops trials itself (as on SageMaker)"
    ]
    config = read_tuning_config({**hyperband, "TrainingJobEarlyStoppingType": "Off"}, {**FIXED, "epochs": "12"})
    assert (config.min_resource, config.max_resource) == (1, 12)  # SageMaker infers MaxResource from epochs
    assert isinstance(space.pruner(config), optuna.pruners.HyperbandPruner)


def test_each_strategy_gets_its_optuna_sampler_and_early_stopping_its_pruner():
    def build(strategy: str, early: str = "Off"):
        doc = {**SAGEMAKER_CONFIG, "Strategy": strategy, "TrainingJobEarlyStoppingType": early}
        if strategy == "Grid":
            doc["ParameterRanges"] = {"CategoricalParameterRanges": [{"Name": "enc_dim", "Values": ["8", "16"]}]}
        config = read_tuning_config(doc, FIXED)
        return type(space.sampler(config, seed=0, parallel=1)).__name__, type(space.pruner(config)).__name__

    assert build("Bayesian") == ("TPESampler", "NopPruner")
    assert build("Random", "Auto") == ("RandomSampler", "MedianRulePruner")
    assert build("Grid") == ("_Grid", "NopPruner")
    assert build("Hyperband") == ("TPESampler", "HyperbandPruner")


@pytest.mark.parametrize(
    ("kind", "low", "high", "scaling", "median_below_middle"),
    [
        ("Continuous", "0.1", "0.9", "Linear", None),
        ("Continuous", "0.001", "1.0", "Logarithmic", True),
        ("Continuous", "0.0", "0.999", "ReverseLogarithmic", False),
        ("Integer", "4", "4096", "Logarithmic", True),
        ("Integer", "4", "12", "Auto", None),  # a ratio below 10: linear
    ],
)
def test_each_scaling_type_samples_inside_its_range_with_its_density(kind, low, high, scaling, median_below_middle):
    name = "dropout" if kind == "Continuous" else "enc_dim"
    doc = {
        **SAGEMAKER_CONFIG,
        "Strategy": "Random",
        "ParameterRanges": {
            f"{kind}ParameterRanges": [{"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}]
        },
    }
    config = read_tuning_config(doc, FIXED)
    study = optuna.create_study(sampler=space.sampler(config, seed=0, parallel=1))
    values = sorted(space.hyperparameters_of(study.ask(space.search_space(config)).params, config)[name] for _ in range(400))
    assert float(low) <= values[0] and values[-1] <= float(high)
    median, middle = values[200], (float(low) + float(high)) / 2
    if median_below_middle is None:
        assert abs(median - middle) < 0.15 * (float(high) - float(low))  # uniform
    else:
        assert (median < middle) == median_below_middle  # log: dense near the bottom; reverse log: near the top
    if kind == "Integer":
        assert all(isinstance(v, int) for v in values)


def test_reverse_logarithmic_values_round_trip_through_optuna_parameters():
    config = read_tuning_config(SAGEMAKER_CONFIG, FIXED)
    params = space.params_of({"dropout": 0.9, "learning_rate": 0.01}, config)
    assert math.isclose(params["1-dropout"], 0.1) and params["learning_rate"] == 0.01


def test_without_a_configuration_the_spec_ranges_for_the_output_layer_are_tuned():
    config = read_tuning_config(None, {**REGRESSION, "epochs": "5"})
    assert (config.objective.metric, config.objective.maximize, config.strategy) == (
        "validation:mean_squared_error",
        False,
        "Bayesian",
    )
    names = [r.name for r in config.ranges]
    assert "epochs" not in names  # fixed by the user
    assert not any(n.startswith("enc0_") for n in names)  # pooled_embedding reads no encoder settings
    assert config.range("enc_dim").low == 4 and config.range("enc_dim").high == 4096
    assert config.range("optimizer").values == ("adagrad", "adam", "rmsprop", "sgd", "adadelta")
    hcnn = read_tuning_config(None, {**FIXED, "enc0_network": "hcnn"})
    assert hcnn.objective.metric == "validation:accuracy"
    assert {"enc0_cnn_filter_width", "enc0_layers", "enc0_token_embedding_dim"} <= {r.name for r in hcnn.ranges}
    assert not any(r.name.startswith("enc1_") for r in hcnn.ranges)  # enc1_network=enc0 copies enc0's


def test_without_a_configuration_there_must_be_something_left_to_tune():
    fixed = {name: value for name, _, value, _ in defaults.RECOMMENDED if not name.startswith("enc*")}
    fixed = {k: (v[0] if isinstance(v, tuple) else v) for k, v in fixed.items()}
    assert problems_of(None, {**FIXED, **fixed}) == [
        "nothing to tune: the hyperparameters fix every one of the spec's recommended ranges; give a tuning.json"
    ]
