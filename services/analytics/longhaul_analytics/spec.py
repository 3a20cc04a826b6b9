"""What the analytics service needs from AWS: its queue, the rule that brings every
platform fact to it, its table and its bucket (the lake)."""

from longhaul.jobs import jobs_table
from longhaul.spec import BucketSpec, ComputeSpec, QueueSpec, RuleSpec, ScalingSpec, ServiceSpec

SPEC = ServiceSpec(
    name="analytics",
    package="longhaul_analytics",
    port=8130,
    queue=QueueSpec(visibility_timeout_s=60, max_receive_count=10),
    rules=(
        RuleSpec(
            name="platform-events",
            bus="platform",
            pattern={"source": [{"prefix": "longhaul."}]},
        ),
    ),
    table=jobs_table(),
    bucket=BucketSpec(expire_prefixes={"work/": 7}),
    api=ComputeSpec(cpu=512, memory_mib=1024),
    worker=ComputeSpec(cpu=1024, memory_mib=4096),
    scaling=ScalingSpec(worker_min=0, worker_max=10, backlog_per_task=500, spot=True),
)
