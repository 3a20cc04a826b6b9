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
    worker=ComputeSpec(cpu=4096, memory_mib=8192),
    scaling=ScalingSpec(worker_min=0, worker_max=20, backlog_per_task=2, spot=True),
)
