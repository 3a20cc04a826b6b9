"""Dependencies of the training routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from longhaul.api.deps import JobStoreDep as StoreDep  # the kit's, under the name the routes use
from longhaul_training.config import TrainingSettings
from longhaul_training.storage import Records

__all__ = ["BucketDep", "RecordsDep", "S3Dep", "StoreDep", "TrainingSettingsDep"]


def _settings(request: Request) -> TrainingSettings:
    settings = request.app.state.settings
    assert isinstance(settings, TrainingSettings)
    return settings


async def _s3(request: Request) -> Any:
    return await request.app.state.aws.get("s3")


def _bucket(request: Request) -> str:
    return str(_settings(request).bucket_name)


async def _records(request: Request) -> Records:
    return Records(await request.app.state.aws.get("dynamodb"), str(_settings(request).table_name))


TrainingSettingsDep = Annotated[TrainingSettings, Depends(_settings)]
S3Dep = Annotated[Any, Depends(_s3)]
BucketDep = Annotated[str, Depends(_bucket)]
RecordsDep = Annotated[Records, Depends(_records)]
