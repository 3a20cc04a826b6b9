"""The web console on AWS (docs/console.md "On AWS"): one small Fargate service behind the
platform ALB at `/console/`, the prefix stripped as for the services; the page's settings
(the ALB as its API base, every service's name, the buckets' S3 origins, the hosted UI and its
public client id, no dev token), the hosted UI itself (the code grant only); a
task role with no permission; the kit's image running the console. And the page works
through that rule: everything it loads, resolved under `/console/` and rewritten as the
ALB rewrites it, is answered by the console app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aws_cdk as cdk
import httpx
import pytest

from longhaul.console import ConsoleConfig, create_app
from longhaul.console.__main__ import DEFAULT_PORT
from longhaul.console.app import STATIC
from longhaul_deploy.app import CONTEXT, SERVICES, build
from longhaul_deploy.image import REPO_ROOT
from longhaul_deploy.service_task import HEALTH_PATH
from tests.unit.deploy._template import container, environment, one, policy_actions, role_of_task
from tests.unit.deploy.conftest import Synthesized

RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"
ORIGIN = "https://longhaul.example.com"


def _task(app: Synthesized) -> dict[str, Any]:
    return one(app.resources("console", "AWS::ECS::TaskDefinition"))[1]


def _rule(app: Synthesized) -> dict[str, Any]:
    properties: dict[str, Any] = one(app.resources("console", RULE))[1]["Properties"]
    return properties


def _rewrite(app: Synthesized) -> tuple[str, str]:
    """The rule's url-rewrite: (regex, replacement) as the ALB applies it."""
    ((transform,),) = [_rule(app)["Transforms"]]
    assert transform["Type"] == "url-rewrite"
    ((rewrite,),) = [transform["UrlRewriteConfig"]["Rewrites"]]
    return rewrite["Regex"], rewrite["Replace"]


def _strings(value: Any) -> str:
    """The literal parts of a template value (a `Fn::Join`'s strings, imports left out)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(_strings(part) for part in value["Fn::Join"][1])
    return ""


def test_the_console_is_behind_the_alb_on_console_at_priority_8100_prefix_stripped(
    any_app: Synthesized,
) -> None:
    rule = _rule(any_app)
    assert rule["Priority"] == 8100 == DEFAULT_PORT  # a rule's priority is its port
    assert rule["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/console/*"]}}
    ]
    assert rule["ListenerArn"] == {
        "Fn::ImportValue": f"longhaul-{any_app.env}-platform:"
        "ExportsOutputRefEdgeLoadBalancerHttps6581747E2FD0FC37"
    }
    assert _rewrite(any_app) == ("^/console/(.*)$", "/$1")
    group_id, group = one(any_app.resources("console", "AWS::ElasticLoadBalancingV2::TargetGroup"))
    assert rule["Actions"] == [{"TargetGroupArn": {"Ref": group_id}, "Type": "forward"}]
    assert group["Properties"]["HealthCheckPath"] == HEALTH_PATH == "/healthz"
    assert group["Properties"]["Matcher"] == {"HttpCode": "200"}
    _, service = one(any_app.resources("console", "AWS::ECS::Service"))
    properties = service["Properties"]
    assert properties["LoadBalancers"] == [
        {"ContainerName": "app", "ContainerPort": 8000, "TargetGroupArn": {"Ref": group_id}}
    ]
    assert properties["DesiredCount"] == 1  # nothing scales it
    assert properties["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE", "Weight": 1}]
    configuration = properties["DeploymentConfiguration"]
    assert (configuration["MinimumHealthyPercent"], configuration["MaximumPercent"]) == (100, 200)
    assert configuration["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert properties["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == (
        "DISABLED"
    )
    # the ALB's security group is the only way in, on the task port
    ingress = any_app.resources("console", "AWS::EC2::SecurityGroupIngress").values()
    assert [(i["Properties"]["FromPort"], i["Properties"]["ToPort"]) for i in ingress] == [
        (8000, 8000)
    ]
    assert "EdgeSecurityGroup" in str([i["Properties"]["SourceSecurityGroupId"] for i in ingress])


def test_the_console_task_is_a_quarter_vcpu_with_the_albs_api_base_and_no_dev_token(
    any_app: Synthesized,
) -> None:
    task = _task(any_app)
    assert (task["Properties"]["Cpu"], task["Properties"]["Memory"]) == ("256", "512")
    variables = environment(task)
    assert "LONGHAUL_CONSOLE_DEV_TOKEN" not in variables  # no /dev-token route on AWS
    assert not [name for name in variables if "TOKEN" in name or "SECRET" in name]
    assert variables["LONGHAUL_CONSOLE_API_BASE"] == "/"
    assert (variables["LONGHAUL_HOST"], variables["LONGHAUL_PORT"]) == ("0.0.0.0", "8000")
    # every service the app deploys, each at its path on the ALB: none named in the code
    services = _strings(variables["LONGHAUL_CONSOLE_SERVICES"])
    for name in any_app.specs:
        assert f'"{name}":"https://' in services, name
        assert f'/{name}"' in services, name
    assert services.count('":"https://') == len(any_app.specs)
    # /media relays presigned URLs of the services' buckets only, in S3's two origins
    origins = variables.get("LONGHAUL_CONSOLE_MEDIA_ORIGINS")
    with_buckets = sorted(name for name, spec in any_app.specs.items() if spec.bucket)
    if not with_buckets:
        assert origins is None
    else:
        assert origins is not None
        parts = origins["Fn::Join"][1]
        assert origins["Fn::Join"][0] == ","
        assert len(parts) == 2 * len(with_buckets)
        for part in parts:
            assert part["Fn::Join"][1][0] == "https://"
        imported = [str(part["Fn::Join"][1][1]["Fn::ImportValue"]) for part in parts]
        assert [i.split(":")[0] for i in imported] == [
            f"longhaul-{any_app.env}-{name}" for name in with_buckets for _ in range(2)
        ]
        assert ["RegionalDomainName" in i for i in imported] == [False, True] * len(with_buckets)


def test_the_console_task_role_holds_no_permission_and_its_execution_role_pulls_and_logs(
    any_app: Synthesized,
) -> None:
    template = any_app.raw("console")
    task = _task(any_app)
    task_role = role_of_task(task)
    assert policy_actions(template, task_role) == {}  # it calls no AWS API
    role = template["Resources"][task_role]["Properties"]
    assert "Policies" not in role
    assert "ManagedPolicyArns" not in role
    execution = policy_actions(template, role_of_task(task, "ExecutionRoleArn"))
    assert set(execution) == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    (log_group,) = any_app.resources("console", "AWS::Logs::LogGroup")
    assert execution["logs:PutLogEvents"] == {f"<{log_group}.Arn>"}


def test_the_console_container_is_hardened_checks_healthz_and_logs_to_cloudwatch(
    any_app: Synthesized,
) -> None:
    found = container(_task(any_app))
    assert found["ReadonlyRootFilesystem"] is True
    assert found["LinuxParameters"] == {
        "Capabilities": {"Drop": ["ALL"]},
        "InitProcessEnabled": True,
    }
    # alone: no collector, the console sends no trace
    assert _task(any_app)["Properties"]["ContainerDefinitions"] == [found]
    assert found["MountPoints"] == [
        {"ContainerPath": "/scratch", "ReadOnly": False, "SourceVolume": "scratch"}
    ]
    assert environment(_task(any_app))["TMPDIR"] == "/scratch"
    assert f":8000{HEALTH_PATH}'" in found["HealthCheck"]["Command"][-1]
    (log_group,) = any_app.resources("console", "AWS::Logs::LogGroup")
    options = found["LogConfiguration"]["Options"]
    assert found["LogConfiguration"]["LogDriver"] == "awslogs"
    assert options["awslogs-group"] == {"Ref": log_group}
    assert options["mode"] == "non-blocking"


def test_the_console_image_is_the_kits_base_image_running_the_console(dev: Synthesized) -> None:
    manifest = json.loads((dev.outdir / f"{dev.console.stack_name}.assets.json").read_text())
    ((image,),) = [list(manifest["dockerImages"].values())]
    source = image["source"]
    assert source["dockerFile"] == "common/console.Dockerfile"
    assert source["platform"] == "linux/amd64"
    staged = dev.outdir / source["directory"]
    dockerfile = (REPO_ROOT / "common/console.Dockerfile").read_text()
    assert (staged / "common/console.Dockerfile").read_text() == dockerfile
    assert sorted(p.name for p in staged.iterdir()) == [
        ".dockerignore",
        "Dockerfile.base",
        "common",
        "requirements-runtime.txt",
        "services",
    ]
    steps = [line.split(None, 1) for line in dockerfile.splitlines() if line and line[0] != "#"]
    assert steps == [
        ["FROM", "longhaul-base"],
        ["ENTRYPOINT", '["python", "-m", "longhaul.console"]'],
    ]


def test_a_service_on_the_consoles_port_is_refused(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context=CONTEXT)
    (media,) = [spec for spec in SERVICES if spec.name == "media"]
    clashing = media.model_copy(update={"port": DEFAULT_PORT})
    with pytest.raises(ValueError, match="port 8100 is the console's rule"):
        build(app, services=(clashing,))


def _page_urls() -> list[str]:
    """What the page loads, relative as written: its stylesheet and entry module, every
    module they import, the stylesheet a module links, and the config it reads."""
    index = (STATIC / "index.html").read_text()
    found = re.findall(r'(?:href|src)="([^"#][^"]*)"', index)
    found = [url for url in found if not url.startswith("data:")]
    for module in sorted((STATIC / "js").glob("*.js")):
        text = module.read_text()
        found += [f"static/js/{name}" for name in re.findall(r'from "\./([\w.]+)"', text)]
        found += re.findall(r'"(static/[\w/.]+)"', text)
    found.append("console/config")  # api.js
    return sorted(set(found))


async def test_the_page_and_all_it_loads_answer_under_console_through_the_albs_rewrite(
    dev: Synthesized,
) -> None:
    regex, replace = _rewrite(dev)
    pattern = re.compile(regex)
    variables = environment(_task(dev))
    app = create_app(ConsoleConfig(services={}, api_base=variables["LONGHAUL_CONSOLE_API_BASE"]))
    page = f"{ORIGIN}/console/"
    urls = _page_urls()
    assert {"static/js/main.js", "static/console.css", "static/outputs.css"} <= set(urls)
    assert "static/js/admin.js" in urls  # imported by main.js
    for url in urls:  # every one relative: it stays under the console's path
        assert not url.startswith(("/", "http:", "https:")), url
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        for url in ["", HEALTH_PATH.lstrip("/"), *urls]:
            path = urlsplit(urljoin(page, url)).path
            assert path.startswith("/console/"), url  # the rule's path pattern
            forwarded = pattern.sub(replace.replace("$1", r"\1"), path)
            answer = await client.get(forwarded)
            assert answer.status_code == 200, (url, forwarded)
        config = (await client.get(pattern.sub(r"/\1", "/console/console/config"))).json()
        assert config["api_base"] == "/"  # the page calls /<service>/... on the ALB itself
        assert config["dev_token"] is False
        assert (await client.get("/dev-token")).status_code == 404


def _client(app: Synthesized) -> tuple[str, dict[str, Any]]:
    logical_id, client = one(app.resources("platform", "AWS::Cognito::UserPoolClient"))
    return logical_id, client["Properties"]


def test_the_hosted_ui_signs_in_to_the_services_client_with_the_code_grant_only(
    any_app: Synthesized,
) -> None:
    """A Cognito prefix domain named from the env (and the account: prefixes are global),
    and the one app client the services verify tokens for, with OAuth: the authorization
    code grant only (no implicit, no client credentials), no secret (PKCE), `openid`, and
    the console's address on the ALB as its only callback and sign-out URL."""
    (domain,) = any_app.resources("platform", "AWS::Cognito::UserPoolDomain").values()
    assert domain["Properties"]["Domain"] == {
        "Fn::Join": ["", [f"longhaul-{any_app.env}-", {"Ref": "AWS::AccountId"}]]
    }
    assert domain["Properties"]["ManagedLoginVersion"] == 1  # the classic hosted UI
    client_id, client = _client(any_app)
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthScopes"] == ["openid"]
    assert client["GenerateSecret"] is False
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    (alb,) = any_app.resources("platform", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    console = {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [alb, "DNSName"]}, "/console/"]]}
    assert client["CallbackURLs"] == client["LogoutURLs"] == [console]
    # the services verify that same client's tokens (`client_id`, token_use=access)
    checked = [
        name
        for name in any_app.services
        for task_id, task in any_app.resources(name, "AWS::ECS::TaskDefinition").items()
        if task_id.startswith("Api")
        and client_id in str(environment(task)["LONGHAUL_AUTH_CLIENT_ID"])
    ]
    assert checked == list(any_app.services)


def test_the_console_task_gets_the_hosted_ui_and_the_public_client_id(
    any_app: Synthesized,
) -> None:
    variables = environment(_task(any_app))
    client_id, _ = _client(any_app)
    (domain_id,) = any_app.resources("platform", "AWS::Cognito::UserPoolDomain")
    auth_url = variables["LONGHAUL_CONSOLE_AUTH_URL"]["Fn::Join"][1]
    assert auth_url[0] == "https://"
    assert domain_id in auth_url[1]["Fn::ImportValue"]
    assert auth_url[2] == ".auth.us-east-1.amazoncognito.com"
    assert client_id in variables["LONGHAUL_CONSOLE_CLIENT_ID"]["Fn::ImportValue"]


def test_a_public_host_in_the_context_is_the_sign_in_address(tmp_path: Path) -> None:
    """With `-c publicHost=<name>` (the name the certificate covers, pointing at the ALB),
    the client returns there instead of to the ALB's own DNS name."""
    app = cdk.App(
        outdir=str(tmp_path), context={**CONTEXT, "env": "dev", "publicHost": "jobs.example.com"}
    )
    (plain,) = [spec for spec in SERVICES if spec.name == "media"]
    platform, *_ = build(app, services=(plain,))
    template = cdk.assertions.Template.from_stack(platform).to_json()
    (client,) = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Cognito::UserPoolClient"
    ]
    assert client["CallbackURLs"] == ["https://jobs.example.com/console/"]
    assert client["LogoutURLs"] == ["https://jobs.example.com/console/"]


async def test_behind_the_alb_the_console_mounts_no_relay_and_names_its_hosted_ui() -> None:
    """With the ALB as the API base the console's /api/ relay is not mounted (it would reach
    the ALB by its DNS name, which the certificate does not cover), and its config names the
    hosted UI and the client id the page signs in with."""
    config = ConsoleConfig(
        services={"media": "https://alb.example/media"},
        api_base="/",
        auth_url="https://longhaul-dev-1.auth.us-east-1.amazoncognito.com/",
        client_id="client-1",
    )
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        assert (await client.get("/api/media/jobs")).status_code == 404
        answer = (await client.get("/console/config")).json()
    assert answer["hosted_ui"] == {
        "url": "https://longhaul-dev-1.auth.us-east-1.amazoncognito.com",
        "client_id": "client-1",
    }
    assert answer["services"] == ["media"]
