"""Experiment tracking and the model registry (MLflow), with lineage tags.

Import from the modules: ``registry`` (``ModelRegistry``, aliases; safe for serving),
``lineage`` (git / DVC / dataset tags) and ``registration`` (register a finished run).
Nothing is imported here, so serving can use the registry without the training code.
"""
