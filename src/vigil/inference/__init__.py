"""Inference without torch: model metadata, ONNX Runtime scorer, decisions, batch scoring.

Public modules (imported directly, so that ``metadata`` stays light for exporters):
``metadata`` (the model contract), ``scorer`` (``OnnxScorer``), ``decision`` (``decide``,
``Decision``, threshold rule), ``reasons`` (occlusion reason codes), ``manager``
(``ModelManager`` hot swap), ``deploy`` (install a model, deploy an experiment),
``follower`` (follow the ``deployments`` table), ``batch`` (score a file) and ``errors``.
"""
