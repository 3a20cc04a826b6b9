"""The echo service's spec."""

from longhaul.jobs import jobs_table
from longhaul.spec import BucketSpec, GsiSpec, QueueSpec, RuleSpec, SecretSpec, ServiceSpec

SPEC = ServiceSpec(
    name="echo",
    package="tests.support.echo",
    port=18100,
    queue=QueueSpec(visibility_timeout_s=6, max_receive_count=20),
    rules=(
        RuleSpec(name="own-facts", pattern={"source": ["longhaul.echo"]}),
        RuleSpec(
            name="uploads",
            bus="default",
            pattern={"source": ["aws.s3"], "detail-type": ["Object Created"]},
        ),
    ),
    table=jobs_table(GsiSpec(name="GSI3", pk="GSI3PK")),
    bucket=BucketSpec(eventbridge_notifications=True),
    secrets=(SecretSpec(name="api-key", description="a key the service signs with"),),
)
