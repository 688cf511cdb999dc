"""The inference service: FastAPI app factory, routes, schemas, security and limits."""

from vigil.serving.app import create_app

__all__ = ["create_app"]
