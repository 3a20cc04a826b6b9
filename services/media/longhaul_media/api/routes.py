"""Uploads (presigned PUT or multipart), the presets, and a finished transcode's outputs."""

from __future__ import annotations

import math
import posixpath
import uuid
from typing import Any

from fastapi import APIRouter, Query, Response

from longhaul.api import CallerDep, FlagsDep, Problem, QuotasDep
from longhaul.api.openapi import problems
from longhaul.jobs import Job, JobNotFound, JobState, JobStore
from longhaul_media.api.deps import BucketDep, MediaSettingsDep, S3Dep, StoreDep
from longhaul_media.api.quotas import upload_quotas
from longhaul_media.config import MediaSettings
from longhaul_media.models import (
    TranscodeOutputs,
    UploadCompleted,
    UploadDone,
    UploadPart,
    UploadRequest,
    UploadTicket,
)
from longhaul_media.presets import (
    Preset,
    PresetUnavailable,
    available_presets,
    require_available,
)
from longhaul_media.storage import output_prefix, safe_filename, upload_prefix
from longhaul_media.worker.handlers import NO_TRANSCODE

__all__ = ["router"]

router = APIRouter(tags=["media"])

MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload
HLS_PLAYLIST = "application/vnd.apple.mpegurl"
DECLARED_BYTES = "longhaul-declared-bytes"  # a multipart upload's declared size, as metadata


@router.get("/presets")
async def presets(flags: FlagsDep) -> dict[str, Preset]:
    """Every preset a transcode may name now (a preset behind a feature flag that is off is
    left out)."""
    return await available_presets(flags)


@router.post("/uploads", status_code=201, response_model=UploadTicket, responses=problems(415))
async def create_upload(
    body: UploadRequest,
    caller: CallerDep,
    settings: MediaSettingsDep,
    quotas: QuotasDep,
    flags: FlagsDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> UploadTicket:
    """Where to upload a video: one presigned PUT, or presigned parts for a big file. Each
    counts towards the caller's uploads an hour and stored bytes, and, when it starts a
    transcode, their concurrent jobs (429 over any of them). A preset behind a feature flag
    that is off is refused (422)."""
    content_type = body.content_type.lower().split(";")[0].strip()
    if content_type not in settings.upload_content_types:
        raise Problem(
            415,
            f"content type {body.content_type!r} is not accepted",
            accepted=list(settings.upload_content_types),
        )
    if body.transcode:
        preset = body.preset or settings.default_preset
        try:
            await require_available(preset, flags)
        except PresetUnavailable as exc:
            raise Problem(
                422, f"{exc}; GET /presets lists those available", preset=preset
            ) from None
    limit = min(settings.max_upload_bytes, settings.quota_stored_bytes)
    if body.size > limit:
        raise Problem(
            413,
            f"the file is {body.size} bytes, over the limit of {limit} bytes",
            max_bytes=limit,
        )
    upload_id = uuid.uuid4().hex
    async with upload_quotas(quotas, caller.sub, upload_id, body, settings):
        return await _ticket(body, caller.sub, upload_id, content_type, settings, s3, bucket)


async def _ticket(
    body: UploadRequest,
    owner: str,
    upload_id: str,
    content_type: str,
    settings: MediaSettings,
    s3: Any,
    bucket: str,
) -> UploadTicket:
    """Presigned URLs that take exactly the declared bytes: Content-Length is a signed
    header of the PUT and of every part."""
    key = upload_prefix(owner, upload_id) + safe_filename(body.filename)
    metadata = {"longhaul-preset": body.preset or settings.default_preset}
    if not body.transcode:
        metadata["longhaul-transcode"] = NO_TRANSCODE
    ttl = settings.upload_url_ttl_s
    if body.size <= settings.multipart_threshold_bytes:
        url = await s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": body.size,
                "Metadata": metadata,
            },
            ExpiresIn=ttl,
        )
        headers = {"Content-Type": content_type, "Content-Length": str(body.size)}
        headers |= {f"x-amz-meta-{k}": v for k, v in metadata.items()}
        return UploadTicket(
            upload_id=upload_id, key=key, method="PUT", url=url, headers=headers, expires_in_s=ttl
        )
    part_bytes = max(settings.multipart_part_bytes, math.ceil(body.size / MAX_PARTS))
    count = math.ceil(body.size / part_bytes)
    started = await s3.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ContentType=content_type,
        Metadata={**metadata, DECLARED_BYTES: str(body.size)},
    )
    parts = [
        UploadPart(
            part_number=number,
            url=await s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": bucket,
                    "Key": key,
                    "UploadId": started["UploadId"],
                    "PartNumber": number,
                    "ContentLength": min(part_bytes, body.size - (number - 1) * part_bytes),
                },
                ExpiresIn=ttl,
            ),
        )
        for number in range(1, count + 1)
    ]
    return UploadTicket(
        upload_id=upload_id,
        key=key,
        method="MULTIPART",
        multipart_upload_id=started["UploadId"],
        part_bytes=part_bytes,
        parts=parts,
        complete_url=f"/uploads/{upload_id}/complete",
        expires_in_s=ttl,
    )


@router.post("/uploads/{upload_id}/complete", response_model=UploadDone)
async def complete_upload(
    upload_id: str,
    body: UploadCompleted,
    caller: CallerDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> UploadDone:
    """Finish a multipart upload once every part is in; an object larger than the upload
    declared is deleted and refused (413)."""
    if not body.key.startswith(upload_prefix(caller.sub, upload_id)):
        raise Problem(404, "no such upload")
    try:
        await s3.complete_multipart_upload(
            Bucket=bucket,
            Key=body.key,
            UploadId=body.multipart_upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.part_number, "ETag": p.etag}
                    for p in sorted(body.parts, key=lambda p: p.part_number)
                ]
            },
        )
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchUpload":
            raise Problem(404, "no such upload") from None
        if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
            raise Problem(422, f"the parts do not complete the upload ({code})") from None
        raise
    await _refuse_oversized(s3, bucket, body.key)
    return UploadDone(upload_id=upload_id, key=body.key)


async def _refuse_oversized(s3: Any, bucket: str, key: str) -> None:
    """Delete the completed object and answer 413 if it is larger than its upload declared.
    The signed part sizes already stop this on S3; this holds wherever they are not
    enforced, before anyone is told the upload is complete."""
    head = await s3.head_object(Bucket=bucket, Key=key)
    metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
    if DECLARED_BYTES not in metadata:  # started before uploads declared their size
        return
    declared = int(metadata[DECLARED_BYTES])
    size = int(head["ContentLength"])
    if size > declared:
        await s3.delete_object(Bucket=bucket, Key=key)
        raise Problem(
            413,
            f"the upload is {size} bytes, over the {declared} bytes it declared; it was deleted",
            max_bytes=declared,
        )


async def _finished(store: JobStore, job_id: str, owner: str) -> Job:
    """The caller's succeeded job, or the problem that says why not."""
    try:
        job = await store.get(job_id, owner)
    except JobNotFound:
        raise Problem(404, "no such job") from None
    if job.state is not JobState.SUCCEEDED or not job.result:
        raise Problem(409, f"the job is {job.state.value}; outputs exist once it succeeded")
    return job


@router.get(
    "/jobs/{job_id}/outputs",
    response_model=TranscodeOutputs,
    response_model_exclude_unset=True,
    responses=problems(409),
)
async def outputs(
    job_id: str,
    caller: CallerDep,
    store: StoreDep,
    settings: MediaSettingsDep,
    s3: S3Dep,
    bucket: BucketDep,
    urls: bool = Query(default=False, description="add short-lived presigned GET URLs"),
) -> TranscodeOutputs:
    """A finished transcode's outputs, with presigned GET URLs on request."""
    job = await _finished(store, job_id, caller.sub)
    result = dict(job.result or {})
    if urls:
        ttl = settings.output_url_ttl_s

        async def sign(key: str) -> str:
            url: str = await s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl
            )
            return url

        result["urls"] = {o["key"]: await sign(o["key"]) for o in result["outputs"]}
        result["urls_expire_in_s"] = ttl
    return TranscodeOutputs.model_validate(result)


@router.get(
    "/jobs/{job_id}/hls/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The playlist (a rendition's segments as presigned URLs)",
            "content": {HLS_PLAYLIST: {"schema": {"type": "string"}}},
        },
        **problems(409),
    },
)
async def playlist(
    job_id: str,
    path: str,
    caller: CallerDep,
    store: StoreDep,
    settings: MediaSettingsDep,
    s3: S3Dep,
    bucket: BucketDep,
) -> Response:
    """A transcode's HLS playlists for playback from the private bucket: the master as it
    is (its renditions resolve to this route), a rendition's playlist with every segment
    as a short-lived presigned URL."""
    parts = path.split("/")
    if not path.endswith(".m3u8") or any(p in ("", ".", "..") for p in parts):
        raise Problem(404, "no such playlist")
    await _finished(store, job_id, caller.sub)
    key = f"{output_prefix(job_id)}hls/{path}"
    try:
        text = (await (await s3.get_object(Bucket=bucket, Key=key))["Body"].read()).decode()
    except s3.exceptions.NoSuchKey:
        raise Problem(404, "no such playlist") from None
    folder = posixpath.dirname(key)
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("#") and not line.endswith(".m3u8"):
            line = await s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": f"{folder}/{line}"},
                ExpiresIn=settings.output_url_ttl_s,
            )
        lines.append(line)
    return Response(
        "\n".join(lines) + "\n",
        media_type=HLS_PLAYLIST,
        headers={"Cache-Control": "private, max-age=60"},
    )
