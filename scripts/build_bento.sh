#!/usr/bin/env bash
# `make bento`: the build context deploy/bento (service.py, bentofile.yaml, requirements.txt)
# plus the Vigil wheel, then `bentoml build`. Usage: scripts/build_bento.sh CONTEXT_DIR
# (BENTOML_HOME chooses the bento store; the bento's Dockerfile is env/docker/Dockerfile).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
context="$1"
bin="${PROVIDERS_BIN:-$root/.venv-providers/bin}"
rm -rf "$context" && mkdir -p "$context/wheels"
cp "$root"/deploy/bento/{service.py,bentofile.yaml,requirements.txt} "$context/"
"$bin/pip" wheel --quiet --no-deps "$root" -w "$context/wheels"
cd "$context"
BENTOML_DO_NOT_TRACK=true "$bin/bentoml" build . --output tag
