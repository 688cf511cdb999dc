"""The environment of Vigil's child processes: the operating system's variables, no configuration.

Configuration is one typed object passed explicitly: a child process gets it as a
``config.yaml`` (``vigil train --config``) or as ``--set`` flags, never through the
environment it inherits. A child that inherited its parent's whole environment would also
inherit the parent's ``VIGIL_*`` overrides, which beat the configuration it was handed (issue
12: ``VIGIL_TRAIN__RUNS_DIR`` in the server's environment made ``PUT /retrain`` fail), and
whatever else the parent was started with. So a child gets an allow-list of what the
operating system, the interpreter and the network stack need (:data:`INHERITED`), the
secrets its settings carry (which ``config.yaml`` masks), and what its caller adds by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from vigil.config import Settings, secret_environment

INHERITED = frozenset(
    {
        # the operating system and the user
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TZ", "TMPDIR", "LANG", "LANGUAGE",
        # the dynamic loader: where the parent found its native libraries (CUDA, ONNX Runtime)
        "LD_LIBRARY_PATH",
        # the interpreter and the environment it was installed in
        "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHASHSEED",
        # thread pools of the numeric libraries (the operator sizes them for the machine)
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
        # the network: proxies and certificate authorities
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    }
)  # fmt: skip
"""Variables a child inherits as they are; ``LC_*`` (the locale) too."""


def child_environment(
    settings: Settings | None, inherited: Mapping[str, str], **extra: str
) -> dict[str, str]:
    """A child's environment: the allow-listed part of ``inherited``, the secrets of
    ``settings`` (``VIGIL_*``; none without settings) and ``extra``."""
    environment = {
        name: value
        for name, value in inherited.items()
        if name in INHERITED or name.startswith("LC_")
    }
    if settings is not None:
        environment |= secret_environment(settings)
    return environment | extra
