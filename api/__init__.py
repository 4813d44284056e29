"""The REST control plane (FastAPI), mounted under /api."""
