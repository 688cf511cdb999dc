#!/usr/bin/env bash
# `make test`'s tools beside Python: Prometheus, promtool and amtool check every dashboard
# query, alert rule and the Alertmanager config (tests/integration/test_prometheus_queries.py);
# Chromium, ffmpeg and poppler render and check the generated docs (one-pager, demo video);
# redis-server and redis-cli start the private Redis Cluster and AOF servers of the state
# store's cluster and failover tests (tests/redis_cluster_support.py); strace stalls the AOF's
# fsync in the Redis restart test (tests/integration/test_redis_failover.py).
# Under CI=true a missing tool is installed (Debian: apt-get, as root) or the run stops here
# with what to install; locally the tests that need it are skipped, and this says so.
set -euo pipefail
missing=()
for tool in prometheus promtool amtool chromium ffmpeg ffprobe pdftoppm pdfinfo redis-server redis-cli strace; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
packages="prometheus prometheus-alertmanager chromium ffmpeg poppler-utils redis-server redis-tools strace"
if [ "${CI:-}" != "true" ]; then
  echo "note: ${missing[*]} not found: the tests that need them will be skipped" \
       "(install: apt-get install $packages)" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} for the tests (apt-get install $packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  exit 0
fi
echo "error: CI=true needs ${missing[*]} on PATH for the monitoring and docs tests;" \
     "install them (Debian/Ubuntu: apt-get install $packages) and rerun" >&2
exit 1
