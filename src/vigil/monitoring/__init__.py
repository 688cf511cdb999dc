"""Monitoring: Prometheus metric definitions and Grafana dashboards generated as code."""

from vigil.monitoring.prometheus import CONTENT_TYPE_LATEST, VigilMetrics, create_metrics

__all__ = ["CONTENT_TYPE_LATEST", "VigilMetrics", "create_metrics"]
