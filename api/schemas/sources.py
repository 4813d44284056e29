from __future__ import annotations

from api.schemas.configured import ConfiguredOut, ConfiguredPatch, create_union
from infra.configs import SOURCE_CONFIGS

SourceCreate = create_union("Source", SOURCE_CONFIGS)


class SourcePatch(ConfiguredPatch):
    pass


class SourceOut(ConfiguredOut):
    pass
