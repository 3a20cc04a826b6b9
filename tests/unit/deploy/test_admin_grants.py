"""The admin routes on AWS (longhaul.jobs.admin): the platform's user pool has the group
`admin` whose members reach them, and each API task role may do exactly what a look at its
own DLQ and a redrive need there, on that DLQ alone; the worker's grant on the DLQ stays
the copy of a message into it."""

from __future__ import annotations

from aws_cdk.assertions import Match

from tests.unit.deploy._template import one, policy_actions, role_of_task
from tests.unit.deploy.conftest import Synthesized

# A look: counts and a receive that hides nothing. A redrive: receive and hide, show again
# what it set aside, delete what it moved. Finding the DLQ: its URL (and the work queue's
# redrive policy, below).
DLQ_ACTIONS = {
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
}


def _queues(app: Synthesized, name: str) -> tuple[str, str]:
    """The `<logical id>.Arn` of the service's work queue and of its DLQ."""
    queues = app.resources(name, "AWS::SQS::Queue")
    work = [k for k, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    dead = [k for k, q in queues.items() if "RedrivePolicy" not in q["Properties"]]
    assert len(work) == 1, name
    assert len(dead) == 1, name
    return f"<{work[0]}.Arn>", f"<{dead[0]}.Arn>"


def _task_role(app: Synthesized, name: str, prefix: str) -> str:
    _, task = one(
        {
            k: v
            for k, v in app.resources(name, "AWS::ECS::TaskDefinition").items()
            if k.startswith(prefix)
        }
    )
    return role_of_task(task)


def test_the_user_pool_has_the_admin_group(any_app: Synthesized) -> None:
    (pool,) = any_app.resources("platform", "AWS::Cognito::UserPool")
    any_app.template("platform").has_resource_properties(
        "AWS::Cognito::UserPoolGroup", {"GroupName": "admin", "UserPoolId": {"Ref": pool}}
    )


def test_each_api_task_role_may_look_at_and_redrive_its_own_dlq_and_nothing_more(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        queue, dlq = _queues(any_app, name)
        api = policy_actions(any_app.raw(name), _task_role(any_app, name, "ApiTask"))
        on_dlq = {action for action, resources in api.items() if dlq in resources}
        assert on_dlq == DLQ_ACTIONS, name
        # The API takes, hides and deletes messages of the DLQ only: never the work queue's.
        taking = {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"}
        assert all(api[action] == {dlq} for action in taking), name
        # The DLQ is found in the work queue's redrive policy; moved messages are sent there.
        assert {"sqs:GetQueueAttributes", "sqs:SendMessage"} <= {
            action for action, resources in api.items() if queue in resources
        }, name
        if spec.table is not None:
            # A listing's rows are read in batches (BatchGetItem), on the service's table.
            table = one(any_app.resources(name, "AWS::DynamoDB::Table"))[0]
            assert api["dynamodb:BatchGetItem"] == {f"<{table}.Arn>"}, name
        worker = policy_actions(any_app.raw(name), _task_role(any_app, name, "WorkerTask"))
        on_dlq = {action for action, resources in worker.items() if dlq in resources}
        assert on_dlq == {"sqs:GetQueueUrl", "sqs:SendMessage"}, name


def test_the_api_grant_on_the_dlq_is_one_statement_naming_only_it(dev: Synthesized) -> None:
    """The grant is written as one statement whose only resource is the DLQ's ARN."""
    for name, spec in dev.specs.items():
        if spec.queue is None:
            continue
        _, dlq = _queues(dev, name)
        logical_id = dlq.strip("<>").removesuffix(".Arn")
        role = _task_role(dev, name, "ApiTask")
        dev.template(name).has_resource_properties(
            "AWS::IAM::Policy",
            {
                "Roles": [{"Ref": role}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            {
                                "Action": sorted(DLQ_ACTIONS),
                                "Effect": "Allow",
                                "Resource": {"Fn::GetAtt": [logical_id, "Arn"]},
                            }
                        ]
                    )
                },
            },
        )
