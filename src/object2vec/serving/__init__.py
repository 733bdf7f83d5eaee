"""Inference: the engine (:mod:`.predictor`), SageMaker's wire format (:mod:`.protocol`), the HTTP
endpoint (:mod:`.app`) and batch transform (:mod:`.transform`). See ``docs/serving.md``."""
