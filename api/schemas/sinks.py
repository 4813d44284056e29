from __future__ import annotations

from api.schemas.configured import ConfiguredOut, ConfiguredPatch, create_union
from infra.configs import SINK_CONFIGS

SinkCreate = create_union("Sink", SINK_CONFIGS)


class SinkPatch(ConfiguredPatch):
    pass


class SinkOut(ConfiguredOut):
    pass
