"""The media service's facts."""

from pydantic import Field

from longhaul.events import Event, event
from longhaul.jobs.events import register_job_facts


@event("media.transcode.completed", 1)
class TranscodeCompleted(Event):
    """A transcode finished: its outputs are in the bucket."""

    job_id: str
    owner: str
    source_key: str
    preset: str
    duration_s: float = Field(ge=0)
    master_key: str
    mp4_key: str
    renditions: list[str]
    outputs: int = Field(ge=0)


@event("media.transcode.failed", 1)
class TranscodeFailed(Event):
    """A transcode ended without outputs, for the reason given."""

    job_id: str
    owner: str
    source_key: str
    preset: str
    reason: str


JOB_FACTS = register_job_facts("media")
