"""What the analytics service needs from AWS: its queue, the rule that brings every
platform fact to it, its table and its bucket (the lake)."""

from longhaul.jobs import jobs_table
from longhaul.spec import (
    BucketSpec,
    ColumnSpec,
    ComputeSpec,
    DateProjection,
    InjectedProjection,
    IntegerProjection,
    LakeSpec,
    PartitionKeySpec,
    QueueSpec,
    RuleSpec,
    ScalingSpec,
    ServiceSpec,
)

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
    # Flush files are compacted into lake/events/ and deleted; the rule is a safety net.
    # Flush files are deleted by compaction; the expiry is a safety net that would delete
    # rows never compacted, so it is long (docs/lake.md "Lifecycle").
    bucket=BucketSpec(expire_prefixes={"work/": 7, "lake/flush/": 30}),
    api=ComputeSpec(cpu=512, memory_mib=1024),
    worker=ComputeSpec(cpu=1024, memory_mib=4096),
    scaling=ScalingSpec(worker_min=0, worker_max=10, backlog_per_task=500, spot=True),
    # The compacted events, for Athena: lake/events/owner=<owner>/dt=<day>/hour=<HH>/.
    lake=LakeSpec(
        database="analytics",
        table="events",
        prefix="lake/events/",
        columns=(
            ColumnSpec(name="id", type="string"),
            ColumnSpec(name="name", type="string"),
            ColumnSpec(name="time", type="timestamp"),
            ColumnSpec(name="received_at", type="timestamp"),
            ColumnSpec(name="source", type="string"),
            ColumnSpec(name="properties", type="string"),
        ),
        partition_keys=(
            PartitionKeySpec(name="owner", projection=InjectedProjection()),
            PartitionKeySpec(name="dt", projection=DateProjection(start="2026-01-01")),
            PartitionKeySpec(name="hour", projection=IntegerProjection(low=0, high=23, digits=2)),
        ),
    ),
)
