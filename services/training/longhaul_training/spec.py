"""What the training service needs from AWS: its queue, the rule that brings its bucket's
dataset uploads to it, its job table and its bucket."""

from longhaul.jobs import jobs_table
from longhaul.spec import (
    BucketSpec,
    ComputeSpec,
    GpuWorkerSpec,
    QueueSpec,
    RuleSpec,
    ScalingSpec,
    ServiceSpec,
)

SPEC = ServiceSpec(
    name="training",
    package="longhaul_training",
    port=8120,
    queue=QueueSpec(visibility_timeout_s=120, max_receive_count=10),
    rules=(
        RuleSpec(
            name="datasets",
            bus="default",  # AWS puts S3 events on the default bus only
            pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"object": {"key": [{"prefix": "datasets/"}]}},
            },
            own_bucket=True,
        ),
    ),
    table=jobs_table(),
    # work/: checkpoints and a sweep's trial models (removed when their job ends; the rule
    # catches what a crash left); imports/: model files callers uploaded (copied to models/
    # once checked).
    bucket=BucketSpec(eventbridge_notifications=True, expire_prefixes={"work/": 7, "imports/": 7}),
    api=ComputeSpec(cpu=512, memory_mib=1024),
    worker=ComputeSpec(cpu=4096, memory_mib=16384, ephemeral_storage_gib=60),
    scaling=ScalingSpec(worker_min=0, worker_max=20, backlog_per_task=1, spot=True),
    # For the PyTorch family: EC2 GPU instances from zero, on the same queue (docs/deploy.md,
    # "The GPU worker").
    gpu_worker=GpuWorkerSpec(instance_type="g6.xlarge", max_tasks=4),
)
