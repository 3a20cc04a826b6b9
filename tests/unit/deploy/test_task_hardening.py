"""Every task is hardened: a read-only root filesystem, no Linux capability, one scratch
volume at /scratch (TMPDIR) on ephemeral storage sized from the spec, and a health check
that calls no AWS API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from longhaul.config import KitSettings
from longhaul.spec import ComputeSpec, ServiceSpec
from longhaul_deploy.image import REPO_ROOT
from longhaul_deploy.service_task import HEALTH_PATH, SCRATCH_PATH, SCRATCH_VOLUME
from longhaul_media.config import GIB, MediaSettings
from longhaul_media.presets import Preset, load_presets
from tests.unit.deploy._template import container, environment
from tests.unit.deploy.conftest import Synthesized

# The image on the task's ephemeral storage, compressed and unpacked (Fargate counts both).
IMAGE_ALLOWANCE_BYTES = 2 * GIB
# MPEG-TS packets and PES headers over the elementary streams of an HLS rendition.
TS_OVERHEAD = 1.10


def _tasks(app: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    tasks = app.resources(name, "AWS::ECS::TaskDefinition")
    assert tasks
    return tasks


def _compute(spec: ServiceSpec, logical_id: str) -> ComputeSpec:
    assert logical_id.startswith(("ApiTask", "WorkerTask")), logical_id
    return spec.api if logical_id.startswith("ApiTask") else spec.worker


def _on_ec2(logical_id: str) -> bool:
    """Whether the task runs on the GPU worker's EC2 instances (the others, on Fargate)."""
    return logical_id.startswith("GpuWorkerTask")


def test_every_container_has_a_read_only_root_and_no_linux_capability(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        for logical_id, task in _tasks(any_app, name).items():
            found = container(task)
            assert found["ReadonlyRootFilesystem"] is True, logical_id
            linux = found["LinuxParameters"]
            assert linux["Capabilities"] == {"Drop": ["ALL"]}, logical_id
            # the init process still reaps ffmpeg and passes SIGTERM on
            assert linux["InitProcessEnabled"] is True, logical_id
            assert "Privileged" not in found, logical_id


def test_every_task_writes_only_to_its_scratch_volume_named_by_tmpdir(
    any_app: Synthesized,
) -> None:
    for name in any_app.services:
        for logical_id, task in _tasks(any_app, name).items():
            volumes = task["Properties"]["Volumes"]
            if _on_ec2(logical_id):
                # a Docker volume of the task's own, which starts as the image's /scratch
                # (owned by the service user): an EC2 bind mount with no host is root's
                assert volumes == [
                    {
                        "Name": SCRATCH_VOLUME,
                        "DockerVolumeConfiguration": {"Driver": "local", "Scope": "task"},
                    }
                ], logical_id
            else:
                # no host, no Docker volume: a bind mount on the task's ephemeral storage
                assert volumes == [{"Name": SCRATCH_VOLUME}], logical_id
            assert container(task)["MountPoints"] == [
                {"ContainerPath": "/scratch", "ReadOnly": False, "SourceVolume": SCRATCH_VOLUME}
            ], logical_id
            assert environment(task)["TMPDIR"] == SCRATCH_PATH == "/scratch", logical_id


def test_ephemeral_storage_is_the_specs_or_fargates_default(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        for logical_id, task in _tasks(any_app, name).items():
            if _on_ec2(logical_id):  # the instances' root volume (GpuWorkerSpec.volume_gib)
                assert "EphemeralStorage" not in task["Properties"], logical_id
                continue
            wanted = _compute(spec, logical_id).ephemeral_storage_gib
            found = task["Properties"].get("EphemeralStorage")
            assert found == (None if wanted is None else {"SizeInGiB": wanted}), logical_id


def test_media_worker_storage_and_the_api_default(dev: Synthesized, prod: Synthesized) -> None:
    for app in (dev, prod):
        tasks = _tasks(app, "media")
        worker = next(t for k, t in tasks.items() if k.startswith("WorkerTask"))
        api = next(t for k, t in tasks.items() if k.startswith("ApiTask"))
        assert worker["Properties"]["EphemeralStorage"] == {"SizeInGiB": 150}
        assert "EphemeralStorage" not in api["Properties"]


def _largest_job_bytes(preset: Preset, upload: int, duration_s: float) -> float:
    """The most scratch one job of `preset` holds at once, with every rung at its maxrate."""
    audio = preset.audio.kbps * 125 * duration_s
    video = sum(r.maxrate_kbps for r in preset.renditions) * 125 * duration_s
    prepare = 2 * upload + audio  # the source, its chunks, the audio
    chunk = upload + video  # at worst one chunk is the whole source (no keyframe to cut at)
    # stitch: each rung (with the audio) joined, and either its downloaded chunks or its HLS
    # segments beside it; then the MP4 copy of one rung, and the audio itself
    rungs = [(r.maxrate_kbps * 125 * duration_s + audio, r.height) for r in preset.renditions]
    mp4 = max((size for size, height in rungs if height <= preset.mp4_height), default=0.0)
    stitch = sum(size * (1 + TS_OVERHEAD) for size, _ in rungs) + mp4 + audio
    return max(prepare, chunk, stitch)


def test_media_worker_storage_holds_its_largest_jobs_at_the_workers_concurrency(
    dev: Synthesized,
) -> None:
    worker = next(t for k, t in _tasks(dev, "media").items() if k.startswith("WorkerTask"))
    variables = environment(worker)
    # The deployment leaves the kit's and media's defaults in place.
    assert not [v for v in variables if v == "LONGHAUL_JOB_CONCURRENCY" or v.startswith("MEDIA_")]
    concurrency = KitSettings.model_fields["job_concurrency"].default
    upload = MediaSettings.model_fields["max_upload_bytes"].default
    duration = MediaSettings.model_fields["max_duration_s"].default
    largest = max(_largest_job_bytes(p, upload, duration) for p in load_presets().values())
    needed = concurrency * largest + IMAGE_ALLOWANCE_BYTES
    size = dev.specs["media"].worker.ephemeral_storage_gib
    assert size is not None
    assert needed <= size * GIB, f"needs {needed / GIB:.1f} GiB"
    # and not grossly more than that
    assert size * GIB <= needed * 1.25, f"needs only {needed / GIB:.1f} GiB"


@pytest.mark.parametrize("gib", [0, 20, 201])
def test_ephemeral_storage_outside_fargates_range_is_refused(gib: int) -> None:
    with pytest.raises(ValidationError):
        ComputeSpec(ephemeral_storage_gib=gib)


@pytest.mark.parametrize("gib", [None, 21, 200])
def test_ephemeral_storage_inside_fargates_range_is_accepted(gib: int | None) -> None:
    assert ComputeSpec(ephemeral_storage_gib=gib).ephemeral_storage_gib == gib


def test_the_containers_health_check_is_liveness_which_calls_no_aws_api(
    any_app: Synthesized,
) -> None:
    assert HEALTH_PATH == "/healthz"  # the ALB's too (test_service_api)
    for name in any_app.services:
        for logical_id, task in _tasks(any_app, name).items():
            command = container(task)["HealthCheck"]["Command"][-1]
            assert f":8000{HEALTH_PATH}'" in command, logical_id


def test_the_base_image_gives_the_service_user_its_scratch_volume() -> None:
    # A bind mount at a path the image declares a VOLUME starts from the image's directory
    # and its owner; without it uid 10001 could not write its scratch.
    text = (REPO_ROOT / "Dockerfile.base").read_text()
    assert re.search(r"install -d -o 10001 -g 10001 -m 0700 /scratch", text)
    assert re.search(r'^VOLUME \["/scratch"\]$', text, re.M)
    assert re.findall(r"^USER (\S+)$", text, re.M)[-1] == "10001"
