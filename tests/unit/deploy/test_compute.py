"""Task sizes: a Fargate role's CPU and memory are one of Fargate's combinations (up to
16 vCPU and 120 GB), and a GPU worker's task fits the instance type it names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from longhaul.spec import (
    FARGATE_MEMORY_MIB,
    GPU_INSTANCES,
    ComputeSpec,
    GpuWorkerSpec,
    QueueSpec,
    ServiceSpec,
)
from tests.unit.deploy.conftest import Synthesized

GIB = 1024
# AWS's table ("Task CPU and memory", Amazon ECS on Fargate, Linux), written out by hand:
# vCPU -> (lowest GB, highest GB, step GB).
FARGATE_TABLE = {
    0.25: None,  # 0.5, 1 or 2 GB
    0.5: (1, 4, 1),
    1: (2, 8, 1),
    2: (4, 16, 1),
    4: (8, 30, 1),
    8: (16, 60, 4),
    16: (32, 120, 8),
}


def _combinations() -> set[tuple[int, int]]:
    found = {(256, 512), (256, 1024), (256, 2048)}
    for vcpu, bounds in FARGATE_TABLE.items():
        if bounds is None:
            continue
        low, high, step = bounds
        found |= {(int(vcpu * 1024), gb * GIB) for gb in range(low, high + 1, step)}
    return found


def test_the_fargate_table_is_awss_from_a_quarter_vcpu_to_16_vcpu_and_120_gb() -> None:
    table = {(cpu, memory) for cpu, memories in FARGATE_MEMORY_MIB.items() for memory in memories}
    assert table == _combinations()
    assert max(table) == (16 * 1024, 120 * GIB)


def test_every_fargate_combination_is_a_valid_compute_spec() -> None:
    for cpu, memory_mib in sorted(_combinations()):
        assert ComputeSpec(cpu=cpu, memory_mib=memory_mib).memory_mib == memory_mib


def test_sizes_fargate_does_not_offer_are_refused_with_the_allowed_range() -> None:
    refusals = [
        (16 * 1024, 128 * GIB, "from 32768 to 122880 MiB"),  # over 120 GB
        (16 * 1024, 36 * GIB, "steps of 8192"),  # 16 vCPU goes in 8 GB steps
        (8 * 1024, 18 * GIB, "steps of 4096"),
        (4 * 1024, 4 * GIB, "from 8192"),  # under the minimum for 4 vCPU
        (512, 512, "from 1024"),
        (1536, 4 * GIB, "not a Fargate size"),
        (32 * 1024, 240 * GIB, "not a Fargate size"),
    ]
    for cpu, memory_mib, reason in refusals:
        with pytest.raises(ValidationError, match=reason):
            ComputeSpec(cpu=cpu, memory_mib=memory_mib)


def test_every_deployed_role_is_a_fargate_size(any_app: Synthesized) -> None:
    for name in any_app.specs:
        for logical_id, task in any_app.resources(name, "AWS::ECS::TaskDefinition").items():
            if logical_id.startswith("GpuWorker"):
                continue
            properties = task["Properties"]
            assert properties["RequiresCompatibilities"] == ["FARGATE"], logical_id
            size = (int(properties["Cpu"]), int(properties["Memory"]))
            assert size in _combinations(), (name, logical_id, size)


def test_a_gpu_task_must_fit_its_instance_type() -> None:
    assert GpuWorkerSpec().instance_type in ("g6.xlarge", "g5.xlarge")
    assert GpuWorkerSpec(instance_type="g5.12xlarge", gpus=2, cpu=16 * 1024).tasks_per_instance == 2
    refusals = [
        ({"instance_type": "p5.48xlarge"}, "not a known GPU type"),
        ({"gpus": 2}, "has 1 GPU"),
        ({"cpu": 5 * 1024}, "4096 CPU units"),
        # the agent registers less than the instance's nominal 16 GiB
        ({"memory_mib": 16 * GIB}, "at most 14745"),
        ({"min_tasks": 3, "max_tasks": 2}, "min_tasks"),
    ]
    for fields, reason in refusals:
        with pytest.raises(ValidationError, match=reason):
            GpuWorkerSpec(**fields)  # type: ignore[arg-type]
    for instance_type, instance in GPU_INSTANCES.items():
        # each type's largest task that fits is accepted
        spec = GpuWorkerSpec(
            instance_type=instance_type,
            gpus=instance.gpus,
            cpu=instance.vcpus * 1024,
            memory_mib=int(instance.memory_mib * 0.9),
        )
        assert spec.tasks_per_instance == 1


def test_a_gpu_worker_needs_the_queue_it_consumes() -> None:
    with pytest.raises(ValidationError, match="GPU worker but no queue"):
        ServiceSpec(name="gpu", package="gpu", port=18400, gpu_worker=GpuWorkerSpec())
    spec = ServiceSpec(
        name="gpu", package="gpu", port=18400, queue=QueueSpec(), gpu_worker=GpuWorkerSpec()
    )
    assert spec.gpu_worker is not None
