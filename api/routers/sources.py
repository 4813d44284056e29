"""Sources: cameras, streams, video files and image folders that feed pipelines."""

from api.services.configured_resources import SOURCES, build_router

router = build_router(SOURCES)
