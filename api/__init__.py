"""The REST control plane (FastAPI), mounted under /api."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geti-inspect")  # one version on every host (docs/deployment.md, upgrades)
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
