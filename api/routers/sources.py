"""Sources: cameras, streams, video files and image folders that feed pipelines."""

from api.schemas.sources import SourceCreate, SourceOut, SourcePatch
from api.services.configured_resources import ConfiguredResource, build_router
from infra.configs import SOURCE_CONFIGS
from infra.database.models import Pipeline, Source

router = build_router(ConfiguredResource(
    row=Source,
    singular="source",
    configs=SOURCE_CONFIGS,
    create_schema=SourceCreate,
    patch_schema=SourcePatch,
    out_schema=SourceOut,
    pipeline_column=Pipeline.source_id,
))
