"""A service's lake (`ServiceSpec.lake`): a Glue database and table over the Parquet files
under a prefix of the service's bucket, for Athena.

The table uses partition projection: Athena computes a partition's location from the query's
values and `storage.location.template`, so no partition is ever added to the catalog, no
crawler runs, and the service's task roles get no Glue permission at all. An `injected` key
(the owner) must be given by every query as an equality, so a query always names one owner's
files. The service's roles are granted nothing new; `Readers` is a managed policy to attach to
whoever queries the table with Athena (Athena's own workgroup and results bucket are theirs).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from longhaul.spec import LakeSpec
from longhaul_deploy._utils import acknowledge, nag_resource

__all__ = [
    "PARQUET_INPUT_FORMAT",
    "PARQUET_OUTPUT_FORMAT",
    "PARQUET_SERDE",
    "READER_ACTIONS",
    "LakeTable",
    "database_name",
]

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
# What Athena needs of the catalog to plan a query over a projected table.
READER_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions")


def database_name(env: str, spec: LakeSpec) -> str:
    """The Glue database's name in environment `env` (Glue names are per account and region)."""
    return f"longhaul_{env}_{spec.database}"


class LakeTable(Construct):
    """The Glue database, the projected Parquet table, and the readers' managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: LakeSpec,
        env: str,
        bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.database_name = database_name(env, spec)
        self.table_name = spec.table
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="Longhaul: tables over Parquet files in a service's bucket",
            ),
        )
        self.table = glue.CfnTable(
            self,
            "Table",
            catalog_id=stack.account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=spec.table,
                description=f"Parquet files under {spec.prefix}, partitions projected",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    **spec.projection_parameters(),
                    "storage.location.template": spec.location_template(bucket.bucket_name),
                },
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=k.name, type=k.type)
                    for k in spec.partition_keys
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[
                        glue.CfnTable.ColumnProperty(name=c.name, type=c.type) for c in spec.columns
                    ],
                    location=spec.location(bucket.bucket_name),
                    input_format=PARQUET_INPUT_FORMAT,
                    output_format=PARQUET_OUTPUT_FORMAT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=PARQUET_SERDE,
                        parameters={"serialization.format": "1"},
                    ),
                ),
            ),
        )
        self.table.node.add_dependency(self.database)
        self.readers = self._readers(spec, bucket, key)

    def _readers(self, spec: LakeSpec, bucket: s3.IBucket, key: kms.IKey) -> iam.ManagedPolicy:
        stack = Stack.of(self)
        objects = bucket.arn_for_objects(f"{spec.prefix}*")
        policy = iam.ManagedPolicy(
            self,
            "Readers",
            description=f"Read the {self.database_name}.{self.table_name} table with Athena",
            statements=[
                iam.PolicyStatement(
                    actions=list(READER_ACTIONS),
                    resources=[
                        stack.format_arn(service="glue", resource="catalog"),
                        stack.format_arn(
                            service="glue", resource="database", resource_name=self.database_name
                        ),
                        stack.format_arn(
                            service="glue",
                            resource="table",
                            resource_name=f"{self.database_name}/{self.table_name}",
                        ),
                    ],
                ),
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects]),
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{spec.prefix}*"]}},
                ),
                # the bucket's objects are encrypted with the service key
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "The lake's Parquet files under its prefix of the service's bucket: their keys "
            "(partitions, compaction runs) are made at run time, so no narrower resource can "
            "name them.",
            findings=(nag_resource(policy, objects),),
        )
        return policy
