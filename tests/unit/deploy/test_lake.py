"""Analytics' lake: a Glue database and table over the compacted Parquet files in its bucket,
read by Athena through partition projection (owner injected, dt a date range, hour 00-23),
a managed policy for its readers, nothing new for the service's own roles, and flush files
expired by a lifecycle rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from longhaul.spec import ColumnSpec, LakeSpec, ServiceSpec
from longhaul_deploy.lake import (
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    database_name,
)
from tests.unit.deploy._template import one, policy_actions, ref
from tests.unit.deploy.conftest import Synthesized

COLUMNS = [
    {"Name": "id", "Type": "string"},
    {"Name": "name", "Type": "string"},
    {"Name": "time", "Type": "timestamp"},
    {"Name": "received_at", "Type": "timestamp"},
    {"Name": "source", "Type": "string"},
    {"Name": "properties", "Type": "string"},
]
PARTITION_KEYS = [
    {"Name": "owner", "Type": "string"},
    {"Name": "dt", "Type": "string"},
    {"Name": "hour", "Type": "string"},
]
PROJECTION = {
    "projection.enabled": "true",
    "projection.owner.type": "injected",
    "projection.dt.type": "date",
    "projection.dt.range": "2026-01-01,NOW",
    "projection.dt.format": "yyyy-MM-dd",
    "projection.dt.interval": "1",
    "projection.dt.interval.unit": "DAYS",
    "projection.hour.type": "integer",
    "projection.hour.range": "0,23",
    "projection.hour.digits": "2",
}


def _table(app: Synthesized, name: str) -> dict[str, Any]:
    _, table = one(app.resources(name, "AWS::Glue::Table"))
    return table


def _joined(value: Any, bucket_id: str) -> str:
    """A `Fn::Join` of strings and the bucket's Ref, as a string with `<bucket>`."""
    delimiter, parts = value["Fn::Join"]
    assert delimiter == ""
    return "".join("<bucket>" if part == ref(bucket_id) else part for part in parts)


def test_analytics_declares_the_events_table_in_the_lake_database(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app in (dev, prod):
        lakes = {name for name, spec in app.specs.items() if spec.lake}
        assert lakes == {"analytics"}
        (database_id, database) = one(app.resources("analytics", "AWS::Glue::Database"))
        assert database["Properties"]["DatabaseInput"]["Name"] == f"longhaul_{app.env}_analytics"
        assert database["Properties"]["CatalogId"] == ref("AWS::AccountId")
        table = _table(app, "analytics")
        assert table["Properties"]["DatabaseName"] == f"longhaul_{app.env}_analytics"
        assert table["Properties"]["TableInput"]["Name"] == "events"
        assert database_id in table["DependsOn"]


def test_the_table_has_the_event_columns_and_the_owner_day_and_hour_partitions(
    dev: Synthesized,
) -> None:
    table = _table(dev, "analytics")["Properties"]["TableInput"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["StorageDescriptor"]["Columns"] == COLUMNS
    assert table["PartitionKeys"] == PARTITION_KEYS
    # no partition column is also a file column (a Hive rule)
    assert not {c["Name"] for c in COLUMNS} & {k["Name"] for k in PARTITION_KEYS}


def test_partitions_are_projected_from_the_hive_paths_of_the_compacted_files(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        tables = any_app.resources(name, "AWS::Glue::Table")
        if spec.lake is None:
            assert not tables, name
            assert not any_app.resources(name, "AWS::Glue::Database"), name
            continue
        bucket_id, _ = one(any_app.resources(name, "AWS::S3::Bucket"))
        table = one(tables)[1]["Properties"]["TableInput"]
        parameters = dict(table["Parameters"])
        template = _joined(parameters.pop("storage.location.template"), bucket_id)
        assert template == "s3://<bucket>/lake/events/owner=${owner}/dt=${dt}/hour=${hour}/"
        assert parameters == {"classification": "parquet", "EXTERNAL": "TRUE", **PROJECTION}
        location = _joined(table["StorageDescriptor"]["Location"], bucket_id)
        assert location == "s3://<bucket>/lake/events/"
        # the layout analytics writes: lake/events/owner=<owner>/dt=YYYY-MM-DD/hour=HH/
        assert spec.lake.prefix == "lake/events/"


def test_the_table_reads_parquet(dev: Synthesized) -> None:
    descriptor = _table(dev, "analytics")["Properties"]["TableInput"]["StorageDescriptor"]
    assert descriptor["SerdeInfo"] == {
        "SerializationLibrary": PARQUET_SERDE,
        "Parameters": {"serialization.format": "1"},
    }
    assert descriptor["InputFormat"] == PARQUET_INPUT_FORMAT
    assert descriptor["OutputFormat"] == PARQUET_OUTPUT_FORMAT
    assert PARQUET_SERDE == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def test_flush_files_expire_after_thirty_days(dev: Synthesized) -> None:
    _, bucket = one(dev.resources("analytics", "AWS::S3::Bucket"))
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert expiring["lake/flush/"] == 30
    # the compacted files are the lake: nothing expires them
    assert not [prefix for prefix in expiring if prefix.startswith("lake/events")]


def test_readers_get_a_policy_and_the_services_roles_get_nothing_new(dev: Synthesized) -> None:
    template = dev.raw("analytics")
    bucket_id, _ = one(dev.resources("analytics", "AWS::S3::Bucket"))
    key_id, _ = one(dev.resources("analytics", "AWS::KMS::Key"))
    _, readers = one(dev.resources("analytics", "AWS::IAM::ManagedPolicy"))
    statements = readers["Properties"]["PolicyDocument"]["Statement"]
    glue = "arn:<AWS::Partition>:glue:us-east-1:<AWS::AccountId>:"
    found: dict[str, set[str]] = {}
    for statement in statements:
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            for resource in resources if isinstance(resources, list) else [resources]:
                found.setdefault(action, set()).add(_flat(resource))
    tables = {f"{glue}catalog", f"{glue}database/longhaul_dev_analytics"}
    tables.add(f"{glue}table/longhaul_dev_analytics/events")
    assert found == {
        "glue:GetDatabase": tables,
        "glue:GetTable": tables,
        "glue:GetPartition": tables,
        "glue:GetPartitions": tables,
        "s3:GetObject": {f"<{bucket_id}.Arn>/lake/events/*"},
        "s3:ListBucket": {f"<{bucket_id}.Arn>"},
        "kms:Decrypt": {f"<{key_id}.Arn>"},
    }
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["lake/events/*"]}}
    # attached to no one here: the readers' own roles take it
    assert set(readers["Properties"]) == {"Description", "Path", "PolicyDocument"}
    for task in dev.resources("analytics", "AWS::ECS::TaskDefinition").values():
        role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        assert not [a for a in policy_actions(template, role) if a.startswith("glue:")]


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    delimiter, parts = value["Fn::Join"]
    return str(delimiter).join(_flat(part) for part in parts)


def test_a_lake_needs_a_bucket_and_distinct_names() -> None:
    lake = LakeSpec(
        database="db", table="t", prefix="lake/t/", columns=(ColumnSpec(name="a", type="string"),)
    )
    assert database_name("dev", lake) == "longhaul_dev_db"
    with pytest.raises(ValidationError, match="lake but no bucket"):
        ServiceSpec(name="lakeside", package="lakeside", port=18500, lake=lake)
    with pytest.raises(ValidationError, match="named twice"):
        LakeSpec(
            database="db",
            table="t",
            prefix="lake/t/",
            columns=(ColumnSpec(name="a", type="string"), ColumnSpec(name="a", type="bigint")),
        )
