"""Dependencies of the media routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from longhaul.api.deps import JobStoreDep as StoreDep  # the kit's, under the name the routes use
from longhaul_media.config import MediaSettings

__all__ = ["BucketDep", "MediaSettingsDep", "S3Dep", "StoreDep"]


def _settings(request: Request) -> MediaSettings:
    settings = request.app.state.settings
    assert isinstance(settings, MediaSettings)
    return settings


async def _s3(request: Request) -> Any:
    return await request.app.state.aws.get("s3")


def _bucket(request: Request) -> str:
    return str(_settings(request).bucket_name)


MediaSettingsDep = Annotated[MediaSettings, Depends(_settings)]
S3Dep = Annotated[Any, Depends(_s3)]
BucketDep = Annotated[str, Depends(_bucket)]
