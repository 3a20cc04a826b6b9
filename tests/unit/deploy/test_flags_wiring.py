"""Each service's feature flags on AWS: one SSM parameter, named to every one of its tasks,
created empty so that a deployment never sets a flag an operator changed (docs/flags.md)."""

from __future__ import annotations

from longhaul.flags import flags_parameter_name
from longhaul_deploy.flags import EMPTY
from tests.unit.deploy._template import environment, one, ref
from tests.unit.deploy.conftest import Synthesized


def test_each_service_names_its_flags_parameter_to_its_tasks_and_never_sets_a_flag(
    any_app: Synthesized,
) -> None:
    for name in any_app.specs:
        logical_id, parameter = one(any_app.resources(name, "AWS::SSM::Parameter"))
        assert parameter["Properties"]["Name"] == flags_parameter_name(any_app.env, name)
        assert parameter["Properties"]["Value"] == EMPTY, "the stack would set a flag"
        tasks = any_app.resources(name, "AWS::ECS::TaskDefinition")
        assert tasks
        for task in tasks.values():
            assert environment(task)["LONGHAUL_FLAGS_PARAMETER"] == ref(logical_id), name
