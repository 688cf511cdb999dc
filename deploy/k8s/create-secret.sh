#!/usr/bin/env bash
# Creates (or replaces) the Secret `vigil-secrets` the API, worker, migrate Job and Dagster read.
# No key is ever written to a file: the API key is VIGIL_API_KEY when set, else a fresh random
# 256-bit key; the two URLs carry passwords, so they come from the environment too.
#
#   export VIGIL_DATABASE_URL='postgresql+psycopg://vigil:<password>@postgres.vigil.svc:5432/vigil'
#   export VIGIL_BROKER_URL='amqp://vigil:<password>@rabbitmq.vigil.svc:5672/'
#   kubectl apply -f deploy/k8s/namespace.yaml
#   deploy/k8s/create-secret.sh            # then: kubectl apply -f deploy/k8s/
#
# The generated key is printed once on stderr (hand it to the API's clients); read it back with
# kubectl -n vigil get secret vigil-secrets -o jsonpath='{.data.VIGIL_SERVING__API_KEY}' | base64 -d
set -euo pipefail

: "${VIGIL_DATABASE_URL:?set VIGIL_DATABASE_URL (postgresql+psycopg://user:password@host:5432/db)}"
: "${VIGIL_BROKER_URL:?set VIGIL_BROKER_URL (amqp://user:password@host:5672/)}"
namespace="${VIGIL_NAMESPACE:-vigil}"
key="${VIGIL_API_KEY:-}"
if [ -z "$key" ]; then
  key="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "generated a new API key (shown once): $key" >&2
fi
case "$key" in
  change-me | replace-me) echo "refusing the placeholder key '$key'" >&2; exit 2 ;;
esac

kubectl create secret generic vigil-secrets --namespace "$namespace" \
  --from-literal=VIGIL_SERVING__API_KEY="$key" \
  --from-literal=VIGIL_STORAGE__DATABASE_URL="$VIGIL_DATABASE_URL" \
  --from-literal=VIGIL_BROKER__URL="$VIGIL_BROKER_URL" \
  --dry-run=client --output=yaml |
  kubectl label --local --filename=- app.kubernetes.io/part-of=vigil --output=yaml |
  kubectl apply --filename=-
