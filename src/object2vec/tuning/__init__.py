"""Automatic model tuning: SageMaker's tuning-job configuration, run on Optuna.

:mod:`.config` reads and checks SageMaker's ``HyperParameterTuningJobConfig`` (no Optuna needed);
:mod:`.space` maps it onto Optuna's samplers, distributions and pruners; :mod:`.study` keeps the
study in its storage and resumes it; :mod:`.worker` runs one trial; :mod:`.pool` runs trials in
worker processes; :mod:`.runner` is :func:`object2vec.tune`; :mod:`.results` writes ``trials.csv``,
the summary and the plots. See ``docs/tuning.md``.
"""
