"""Inference providers beside Vigil's own API: Triton, BentoML, OpenVINO (docs/providers.md).

These modules run in the provider environment (``make setup-providers``: ``.venv-providers``
from ``requirements-providers.lock``), whose pins cannot share ``.venv``; the API and the
worker never import them. Vigil's side of Triton (``inference.backend: triton``) is
:mod:`vigil.inference.triton`, which needs nothing beyond the standard library.
"""
