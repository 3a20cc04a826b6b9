"""What the media service needs from AWS: its queue, the rule that brings its bucket's
uploads to it, its job table and its bucket."""

from longhaul.jobs import jobs_table
from longhaul.spec import BucketSpec, ComputeSpec, QueueSpec, RuleSpec, ScalingSpec, ServiceSpec

SPEC = ServiceSpec(
    name="media",
    package="longhaul_media",
    port=8110,
    # A chunk's lease and message are renewed every visibility/3 s while it runs; two
    # minutes keeps a dead worker's chunk waiting at most that long for another worker.
    queue=QueueSpec(visibility_timeout_s=120, max_receive_count=10),
    rules=(
        RuleSpec(
            name="uploads",
            bus="default",  # AWS puts S3 events on the default bus only
            pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"object": {"key": [{"prefix": "uploads/"}]}},
            },
            own_bucket=True,
        ),
    ),
    table=jobs_table(),
    bucket=BucketSpec(
        eventbridge_notifications=True,
        expire_prefixes={"work/": 7, "uploads/": 30},
    ),
    api=ComputeSpec(cpu=512, memory_mib=1024),
    # Scratch, at the limits (MEDIA_MAX_UPLOAD_BYTES 10 GiB, MEDIA_MAX_DURATION_S 6 h), every
    # rung at its maxrate with the audio: prepare holds the source and its chunks (2 x 10
    # GiB); a chunk its piece of the source and its rungs (37 GiB if the whole file is one
    # chunk); stitch the most: every rung joined (28.2 GiB) and as HLS (+10% for MPEG-TS:
    # 31 GiB), the 720p MP4 (7.9 GiB) and the audio, 67.4 GiB. A worker runs
    # LONGHAUL_JOB_CONCURRENCY (2) jobs at once: 2 x 67.4 GiB, plus the image (~2 GiB,
    # compressed and unpacked) = 137 GiB; 150 leaves ~10% for encoder overshoot.
    # tests/unit/deploy recomputes this from the presets. Past the 20 GiB included, storage
    # costs ~$0.014 an hour per running worker (~7% of its compute); workers scale from zero.
    worker=ComputeSpec(cpu=4096, memory_mib=8192, ephemeral_storage_gib=150),
    scaling=ScalingSpec(worker_min=0, worker_max=20, backlog_per_task=2, spot=True),
)
