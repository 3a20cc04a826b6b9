"""The media service's payloads, results and API bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "ChunkPayload",
    "ChunkResult",
    "MediaInfo",
    "Output",
    "TranscodeOutputs",
    "TranscodePayload",
    "TranscodeResult",
    "UploadCompleted",
    "UploadDone",
    "UploadRequest",
    "UploadTicket",
]

UPLOAD_KEY = r"^uploads/[A-Za-z0-9_.@:-]{1,128}/[a-f0-9]{32}/[A-Za-z0-9._-]{1,128}$"


def _known_preset(name: str) -> str:
    from longhaul_media.presets import load_presets

    if name not in load_presets():
        raise ValueError(f"unknown preset {name!r}; GET /presets lists them")
    return name


PresetName = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$"), AfterValidator(_known_preset)]


class TranscodePayload(BaseModel):
    """Transcode one of the caller's uploads with a named preset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"key": "uploads/alice/0123456789abcdef0123456789abcdef/clip.mp4", "preset": "fast"}
            ]
        },
    )

    key: str = Field(pattern=UPLOAD_KEY, description="the upload's object key")
    preset: PresetName = "default"


class MediaInfo(BaseModel):
    """What the probe found."""

    format: str
    size: int
    duration_s: float
    width: int  # as displayed, after rotation
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise, as the display matrix says: 0, 90, 180 or 270
    frame_rate: float
    variable_frame_rate: bool
    video_codec: str
    audio_codec: str | None
    audio_channels: int | None
    start_s: float = 0.0
    keyframes_s: list[float] = Field(default_factory=list, exclude=True)


class Chunk(BaseModel):
    """One keyframe-aligned stretch of the source."""

    index: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Its length."""
        return self.end_s - self.start_s


class RungSize(BaseModel):
    """A rendition's name and frame size for this source."""

    name: str
    width: int = Field(ge=2)
    height: int = Field(ge=2)


class ChunkPayload(BaseModel):
    """Encode one chunk of a transcode (an internal job: spawned by the transcode)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    preset: str
    rotation: int
    rungs: list[RungSize] = Field(min_length=1)


class ChunkResult(BaseModel):
    """What a chunk job leaves behind in the bucket."""

    index: int
    outputs: dict[str, str]  # rendition -> work key
    encode_s: float


class Output(BaseModel):
    """One file a transcode produced."""

    key: str
    kind: Literal["master", "playlist", "segment", "mp4", "poster", "sprite", "vtt"]
    size: int
    content_type: str
    rendition: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


class RenditionOutput(BaseModel):
    """One HLS rendition: its playlist and, summed, its segments."""

    name: str
    width: int
    height: int
    playlist: str
    segments: int
    segment_bytes: int
    duration_s: float
    peak_bps: int
    average_bps: int


class TranscodeResult(BaseModel):
    """A finished transcode: the source as probed and every output."""

    source_key: str
    source: MediaInfo
    preset: str
    chunks: int
    master: str
    mp4: str
    poster: str
    sprite: str
    vtt: str
    renditions: list[RenditionOutput]
    outputs: list[Output]  # every file but the segments (the renditions sum those up)
    bytes: int


class TranscodeOutputs(TranscodeResult):
    """`GET /jobs/{id}/outputs`: a finished transcode's result, with presigned GET URLs of
    its outputs (by key) when asked for."""

    urls: dict[str, str] | None = Field(default=None, description="output key -> GET URL")
    urls_expire_in_s: int | None = None


class UploadRequest(BaseModel):
    """What the caller is about to upload."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"filename": "clip.mp4", "content_type": "video/mp4", "size": 1048576},
                {"filename": "raw.mov", "content_type": "video/quicktime", "size": 2048},
            ]
        },
    )

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=100)
    size: int = Field(gt=0, description="bytes")
    preset: PresetName | None = Field(
        default=None, description="transcode with this preset once uploaded (default: default)"
    )
    transcode: bool = Field(default=True, description="start a transcode when the upload lands")


class UploadPart(BaseModel):
    """One part of a multipart upload: where to PUT it."""

    part_number: int
    url: str


class UploadTicket(BaseModel):
    """Where and how to upload: one presigned PUT, or presigned parts and a complete call."""

    upload_id: str
    key: str
    method: Literal["PUT", "MULTIPART"]
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    multipart_upload_id: str | None = None
    part_bytes: int | None = None
    parts: list[UploadPart] = Field(default_factory=list)
    complete_url: str | None = None
    expires_in_s: int


class CompletedPart(BaseModel):
    """A part the caller uploaded, with the ETag S3 returned for it."""

    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class UploadCompleted(BaseModel):
    """Finish a multipart upload."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=UPLOAD_KEY)
    multipart_upload_id: str = Field(min_length=1, max_length=1024)
    parts: list[CompletedPart] = Field(min_length=1, max_length=10_000)


class UploadDone(BaseModel):
    """A multipart upload, complete: its object is in the bucket."""

    upload_id: str
    key: str
