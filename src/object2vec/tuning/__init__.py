"""Automatic model tuning: SageMaker's tuning-job configuration, run on Optuna (``docs/tuning.md``).

:mod:`.config` is the configuration as data, :mod:`.parse` reads and checks SageMaker's
``HyperParameterTuningJobConfig`` into it and :mod:`.defaults` holds the spec's recommended ranges
(none of the three needs Optuna); :mod:`.space` maps it onto Optuna's samplers, distributions and
pruners; :mod:`.study` keeps the study in its storage and resumes it; :mod:`.worker` runs one trial,
:mod:`.pool` runs trials in worker processes, :mod:`.loop` proposes and records them;
:mod:`.runner` is :func:`object2vec.tune`; :mod:`.results` writes ``trials.csv``, the summary and
the plots.
"""
