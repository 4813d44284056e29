"""CRUD routes shared by sources and sinks: {type, name, config} rows with per-type configs.

No ``from __future__ import annotations`` here: the route signatures use the body types given
to the factory, which FastAPI must see as real objects, not as strings it cannot resolve.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.deps import SessionDep, SettingsDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.configured import ConfiguredPatch
from api.schemas.sinks import SinkCreate, SinkOut, SinkPatch
from api.schemas.sources import SourceCreate, SourceOut, SourcePatch
from api.services.guards import config_error, ensure_unused
from infra.configs import SINK_CONFIGS, SOURCE_CONFIGS, ConfigModel, MaskedSecretError, restore_masked
from infra.configs.confinement import Confinement, NotAllowed
from infra.database.models import Pipeline, Project, Sink, Source
from infra.settings import Settings


@dataclass(frozen=True)
class ConfiguredResource:
    row: type[Source] | type[Sink]
    singular: str  # "source": the path segment is f"{singular}s"
    configs: Mapping[str, type[ConfigModel]]
    create_schema: Any  # the discriminated {type, name, config} union
    patch_schema: type[ConfiguredPatch]
    out_schema: type[BaseModel]
    pipeline_column: InstrumentedAttribute[uuid.UUID]  # Pipeline.<singular>_id


def _validated_config(resource: ConfiguredResource, type_name: str, config: dict[str, Any],
                      stored: dict[str, Any], confinement: Confinement) -> dict[str, Any]:
    """The config to store: masked secrets restored from ``stored``, validated for the type, and its
    paths and hosts checked against the operator's limits (stored as given; the runtime resolves again)."""
    try:
        restored = restore_masked(config, stored)
        model = resource.configs[type_name].model_validate(restored)
        confinement.confine(model)
        return model.model_dump(mode="json")
    except (MaskedSecretError, NotAllowed) as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    except ValidationError as error:
        raise config_error(error) from None


def add_row(resource: ConfiguredResource, session: Session, settings: Settings, project_id: uuid.UUID,
            body: Any) -> Source | Sink:
    """A new row from a validated create body (flushed, not committed); its config checked against the limits."""
    get_or_404(session, Project, project_id)
    # A mask sent on create has nothing behind it: restore_masked refuses it.
    config = _validated_config(resource, body.type, body.config.model_dump(mode="json"), {},
                               Confinement.from_settings(settings))
    row = resource.row(project_id=project_id, type=body.type, name=body.name, config=config)
    session.add(row)
    session.flush()
    return row


def change_row(resource: ConfiguredResource, session: Session, settings: Settings, row: Source | Sink,
               body: ConfiguredPatch) -> Source | Sink:
    """Rename and/or change the config of a row (partial: config fields not given keep their stored values)."""
    if body.name is None and body.config is None:
        raise HTTPException(status_code=422, detail="nothing to update: give name and/or config")
    if body.config is not None:
        row.config = _validated_config(resource, row.type, {**row.config, **body.config}, row.config,
                                       Confinement.from_settings(settings))
    if body.name is not None:
        row.name = body.name
    session.flush()
    return row


def build_router(resource: ConfiguredResource) -> APIRouter:
    plural = f"{resource.singular}s"
    what = resource.singular.capitalize()
    row_type = resource.row
    router = APIRouter(prefix=API_PREFIX, tags=[plural])
    # The path says {source_id} / {sink_id}; the handlers below share one parameter name.
    RowId = Annotated[uuid.UUID, Path(alias=f"{resource.singular}_id")]
    item = f"/{plural}/{{{resource.singular}_id}}"

    @router.get(f"/projects/{{project_id}}/{plural}", response_model=list[resource.out_schema],
                name=f"list_{plural}")
    def list_rows(project_id: uuid.UUID, session: SessionDep) -> list[Source | Sink]:
        get_or_404(session, Project, project_id)
        query = select(row_type).where(row_type.project_id == project_id).order_by(row_type.created_at.desc())
        return list(session.scalars(query))

    @router.post(f"/projects/{{project_id}}/{plural}", response_model=resource.out_schema, status_code=201,
                 name=f"create_{resource.singular}")
    def create_row(project_id: uuid.UUID, body: resource.create_schema, session: SessionDep,
                   settings: SettingsDep) -> Source | Sink:
        return add_row(resource, session, settings, project_id, body)

    @router.get(item, response_model=resource.out_schema, name=f"get_{resource.singular}")
    def read_row(row_id: RowId, session: SessionDep) -> Source | Sink:
        return get_or_404(session, row_type, row_id)

    @router.patch(item, response_model=resource.out_schema, name=f"update_{resource.singular}")
    def update_row(row_id: RowId, body: resource.patch_schema, session: SessionDep,
                   settings: SettingsDep) -> Source | Sink:
        return change_row(resource, session, settings, get_or_404(session, row_type, row_id), body)

    @router.delete(item, status_code=204, name=f"delete_{resource.singular}")
    def delete_row(row_id: RowId, session: SessionDep) -> Response:
        row = get_or_404(session, row_type, row_id)
        ensure_unused(session, resource.pipeline_column, row_id, what)
        session.delete(row)
        return Response(status_code=204)

    return router


SOURCES = ConfiguredResource(row=Source, singular="source", configs=SOURCE_CONFIGS, create_schema=SourceCreate,
                             patch_schema=SourcePatch, out_schema=SourceOut, pipeline_column=Pipeline.source_id)
SINKS = ConfiguredResource(row=Sink, singular="sink", configs=SINK_CONFIGS, create_schema=SinkCreate,
                           patch_schema=SinkPatch, out_schema=SinkOut, pipeline_column=Pipeline.sink_id)
