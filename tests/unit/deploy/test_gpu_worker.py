"""The optional GPU worker (training's, for the PyTorch family): the worker's image and
command with the task's GPU requirement, on EC2 GPU instances that an Auto Scaling group at
zero provides through an ECS capacity provider, with IMDSv2 and a least-privilege instance
role, scaled on the queue's backlog like the worker."""

from __future__ import annotations

from typing import Any

from longhaul.spec import GpuWorkerSpec
from longhaul_deploy.config import settings_for
from longhaul_deploy.gpu_worker import DEVICE_VARIABLE, gpu_cluster_name, instance_bounds
from longhaul_deploy.service_worker import BACKLOG_EXPRESSION, FROM_ZERO_EXPRESSION
from tests.unit.deploy._alarms import evaluate
from tests.unit.deploy._template import container, environment, one, policy_actions, ref
from tests.unit.deploy.conftest import Synthesized

GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
EC2_KINDS = (
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::EC2::LaunchTemplate",
    "AWS::ECS::CapacityProvider",
    "AWS::ECS::ClusterCapacityProviderAssociations",
    "AWS::IAM::InstanceProfile",
)


def _gpu_services(app: Synthesized) -> dict[str, GpuWorkerSpec]:
    return {name: spec.gpu_worker for name, spec in app.specs.items() if spec.gpu_worker}


def _starting(app: Synthesized, name: str, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    return one({k: v for k, v in app.resources(name, kind).items() if k.startswith(prefix)})


def test_training_declares_a_gpu_worker_for_its_pytorch_family(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app in (dev, prod):
        gpu = _gpu_services(app)
        assert set(gpu) == {"training"}
        assert gpu["training"].instance_type in ("g6.xlarge", "g5.xlarge")


def test_the_gpu_worker_runs_the_workers_image_and_command_with_its_gpus(
    any_app: Synthesized,
) -> None:
    for name, gpu in _gpu_services(any_app).items():
        _, worker = _starting(any_app, name, "AWS::ECS::TaskDefinition", "WorkerTask")
        _, task = _starting(any_app, name, "AWS::ECS::TaskDefinition", "GpuWorkerTask")
        properties = task["Properties"]
        assert properties["RequiresCompatibilities"] == ["EC2"]
        assert properties["NetworkMode"] == "awsvpc"
        found, expected = container(task), container(worker)
        assert found["ResourceRequirements"] == [{"Type": "GPU", "Value": str(gpu.gpus)}]
        assert (found["Cpu"], found["Memory"]) == (gpu.cpu, gpu.memory_mib)
        for same in ("Image", "Command", "StopTimeout", "Secrets", "HealthCheck", "MountPoints"):
            assert found.get(same) == expected.get(same), same
        assert found["Command"] == ["--role", "worker"]
        assert environment(task) == {**environment(worker), **DEVICE_VARIABLE}
        assert DEVICE_VARIABLE == {"LONGHAUL_DEVICE": "cuda"}
        assert found["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == "gpu-worker"


def test_the_gpu_worker_runs_on_gpu_instances_through_a_capacity_provider_from_zero(
    any_app: Synthesized,
) -> None:
    for name, gpu in _gpu_services(any_app).items():
        cluster_id, cluster = _starting(any_app, name, "AWS::ECS::Cluster", "GpuWorkerCluster")
        assert cluster["Properties"]["ClusterName"] == gpu_cluster_name(any_app.env, name)
        _, provider = _starting(any_app, name, "AWS::ECS::CapacityProvider", "GpuWorker")
        asg_id, asg = _starting(any_app, name, "AWS::AutoScaling::AutoScalingGroup", "GpuWorker")
        auto_scaling = provider["Properties"]["AutoScalingGroupProvider"]
        assert auto_scaling == {
            "AutoScalingGroupArn": ref(asg_id),
            "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
            "ManagedTerminationProtection": "ENABLED",
            "ManagedDraining": "ENABLED",
        }
        bounds = settings_for(any_app.env).gpu_worker_bounds(gpu)
        low, high = instance_bounds(gpu, bounds)
        assert low == 0
        assert (asg["Properties"]["MinSize"], asg["Properties"]["MaxSize"]) == ("0", str(high))
        assert "DesiredCapacity" not in asg["Properties"]  # managed scaling owns it
        # managed termination protection: ECS lifts it from instances with no task
        assert asg["Properties"]["NewInstancesProtectedFromScaleIn"] is True
        association_id, association = _starting(
            any_app, name, "AWS::ECS::ClusterCapacityProviderAssociations", "GpuWorker"
        )
        provider_id, _ = _starting(any_app, name, "AWS::ECS::CapacityProvider", "GpuWorker")
        assert association["Properties"]["Cluster"] == ref(cluster_id)
        assert association["Properties"]["CapacityProviders"] == [ref(provider_id)]
        _, template = _starting(any_app, name, "AWS::EC2::LaunchTemplate", "GpuWorker")
        data = template["Properties"]["LaunchTemplateData"]
        assert data["InstanceType"] == gpu.instance_type
        parameter = data["ImageId"]["Ref"]
        assert any_app.raw(name)["Parameters"][parameter]["Default"] == GPU_AMI_PARAMETER
        _, service = _starting(any_app, name, "AWS::ECS::Service", "GpuWorkerService")
        properties = service["Properties"]
        assert properties["Cluster"] == ref(cluster_id)
        assert properties["CapacityProviderStrategy"] == [
            {"CapacityProvider": ref(provider_id), "Weight": 1}
        ]
        assert "LaunchType" not in properties
        assert "DesiredCount" not in properties  # auto scaling owns it, as for the worker
        assert association_id in service["DependsOn"]
        assert properties["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True,
            "Rollback": True,
        }
        assert "LoadBalancers" not in properties


def test_gpu_instances_require_imdsv2_and_keep_their_metadata_from_the_tasks(
    any_app: Synthesized,
) -> None:
    for name, gpu in _gpu_services(any_app).items():
        cluster_id, _ = _starting(any_app, name, "AWS::ECS::Cluster", "GpuWorkerCluster")
        _, template = _starting(any_app, name, "AWS::EC2::LaunchTemplate", "GpuWorker")
        data = template["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
        assert not data.get("NetworkInterfaces")  # no public address
        (device,) = data["BlockDeviceMappings"]
        assert device["Ebs"] == {
            "DeleteOnTermination": True,
            "Encrypted": True,
            "VolumeSize": gpu.volume_gib,
            "VolumeType": "gp3",
        }
        user_data = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
        script = "".join(part if isinstance(part, str) else "<cluster>" for part in user_data)
        assert ref(cluster_id) in user_data
        lines = set(script.splitlines())
        for setting in (
            "ECS_CLUSTER=<cluster>",
            "ECS_AWSVPC_BLOCK_IMDS=true",  # awsvpc tasks cannot reach the instance's role
            # the tasks' logs go out with their execution role, which also pulls the image
            "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE=true",
            "ECS_ENABLE_GPU_SUPPORT=true",
        ):
            assert f"echo {setting} >> /etc/ecs/ecs.config" in lines, setting
        _, asg = _starting(any_app, name, "AWS::AutoScaling::AutoScalingGroup", "GpuWorker")
        subnets = str(asg["Properties"]["VPCZoneIdentifier"])
        assert "tasksSubnet" in subnets
        assert "public" not in subnets


def test_the_instance_role_has_only_the_ecs_agents_actions_on_its_cluster(
    any_app: Synthesized,
) -> None:
    for name in _gpu_services(any_app):
        template = any_app.raw(name)
        cluster_id, _ = _starting(any_app, name, "AWS::ECS::Cluster", "GpuWorkerCluster")
        role_id, role = _starting(any_app, name, "AWS::IAM::Role", "GpuWorkerInstanceRole")
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}
        assert "ManagedPolicyArns" not in role["Properties"]
        instances = (
            "arn:<AWS::Partition>:ecs:us-east-1:<AWS::AccountId>:container-instance/"
            f"{gpu_cluster_name(any_app.env, name)}/*"
        )
        cluster = f"<{cluster_id}.Arn>"
        assert policy_actions(template, role_id) == {
            "ecs:RegisterContainerInstance": {cluster},
            "ecs:DeregisterContainerInstance": {cluster},
            "ecs:SubmitAttachmentStateChanges": {cluster},
            "ecs:SubmitContainerStateChange": {cluster},
            "ecs:SubmitTaskStateChange": {cluster},
            "ecs:Poll": {instances},
            "ecs:StartTelemetrySession": {instances},
            "ecs:DiscoverPollEndpoint": {"*"},
        }
        # polling as a container instance: of this cluster only
        for resource in template["Resources"].values():
            if (
                resource["Type"] == "AWS::IAM::Policy"
                and ref(role_id) in resource["Properties"]["Roles"]
            ):
                for found in resource["Properties"]["PolicyDocument"]["Statement"]:
                    if "ecs:Poll" in found["Action"]:
                        assert found["Condition"] == {
                            "ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster_id, "Arn"]}}
                        }
        # only the instances hold it: no task role and no execution role is this role
        (profile,) = any_app.resources(name, "AWS::IAM::InstanceProfile").values()
        assert profile["Properties"]["Roles"] == [ref(role_id)]
        for task in any_app.resources(name, "AWS::ECS::TaskDefinition").values():
            for attribute in ("TaskRoleArn", "ExecutionRoleArn"):
                assert task["Properties"][attribute]["Fn::GetAtt"][0] != role_id


def test_the_gpu_worker_scales_on_the_queue_backlog_like_the_worker(
    any_app: Synthesized,
) -> None:
    for name, gpu in _gpu_services(any_app).items():
        cluster = gpu_cluster_name(any_app.env, name)
        queue_id = next(
            k
            for k, v in any_app.resources(name, "AWS::SQS::Queue").items()
            if "RedrivePolicy" in v["Properties"]
        )
        service_id, _ = _starting(any_app, name, "AWS::ECS::Service", "GpuWorkerService")
        _, target = _starting(
            any_app, name, "AWS::ApplicationAutoScaling::ScalableTarget", "GpuWorker"
        )
        assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
            settings_for(any_app.env).gpu_worker_bounds(gpu)
        )
        assert target["Properties"]["MinCapacity"] == 0
        assert cluster in str(target["Properties"]["ResourceId"])
        _, policy = _starting(
            any_app, name, "AWS::ApplicationAutoScaling::ScalingPolicy", "GpuWorkerBacklogPerTask"
        )
        configuration = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert configuration["TargetValue"] == gpu.backlog_per_task
        metrics = {m["Id"]: m for m in configuration["CustomizedMetricSpecification"]["Metrics"]}
        assert metrics["e1"]["Expression"] == BACKLOG_EXPRESSION
        assert metrics["m1"]["MetricStat"]["Metric"]["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        ]
        assert metrics["m2"]["MetricStat"]["Metric"]["Dimensions"] == [
            {"Name": "ClusterName", "Value": cluster},
            {"Name": "ServiceName", "Value": {"Fn::GetAtt": [service_id, "Name"]}},
        ]
        _, alarm = _starting(
            any_app, name, "AWS::CloudWatch::Alarm", "GpuWorkerBacklogWithoutWorkers"
        )
        properties = alarm["Properties"]
        assert next(m for m in properties["Metrics"] if "Expression" in m)["Expression"] == (
            FROM_ZERO_EXPRESSION
        )
        first_message = {
            "ApproximateNumberOfMessagesVisible": [None, None, 1.0],
            "ApproximateNumberOfMessagesNotVisible": [None, None, 0.0],
        }
        assert evaluate(properties, first_message, 3) == "ALARM"
        assert evaluate(properties, {}, 3) == "OK"


def test_services_without_a_gpu_worker_have_no_ec2_capacity(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        if spec.gpu_worker is not None:
            continue
        for kind in EC2_KINDS:
            assert not any_app.resources(name, kind), (name, kind)
        for task in any_app.resources(name, "AWS::ECS::TaskDefinition").values():
            assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"], name
