"""The echo service's spec."""

from longhaul.spec import (
    BucketSpec,
    GsiSpec,
    QueueSpec,
    RuleSpec,
    SecretSpec,
    ServiceSpec,
    TableSpec,
)

SPEC = ServiceSpec(
    name="echo",
    package="tests.support.echo",
    port=18100,
    queue=QueueSpec(visibility_timeout_s=30, max_receive_count=3),
    rules=(
        RuleSpec(name="own-facts", pattern={"source": ["longhaul.echo"]}),
        RuleSpec(
            name="uploads",
            bus="default",
            pattern={"source": ["aws.s3"], "detail-type": ["Object Created"]},
        ),
    ),
    table=TableSpec(
        gsis=(GsiSpec(name="GSI1", pk="GSI1PK", sk="GSI1SK"), GsiSpec(name="GSI2", pk="GSI2PK")),
    ),
    bucket=BucketSpec(eventbridge_notifications=True),
    secrets=(SecretSpec(name="api-key", description="a key the service signs with"),),
)
