"""What a service is watched by: the API's alarms (which also roll back its canary), the
queue's alarms, the jobs' alarms (from the metrics the tasks publish in CloudWatch's
Embedded Metric Format, `longhaul.observability.emf`), and one dashboard."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.jobs.worker.metrics import WATCHED
from longhaul.observability.emf import NAMESPACE

__all__ = [
    "FIVE_XX_EXPRESSION",
    "FIVE_XX_PERCENT",
    "JOB_FAILURE_PERCENT",
    "JOB_METRICS",
    "LATENCY_EXPRESSION",
    "LEASES_LOST",
    "MIN_JOBS",
    "MIN_LATENCY_SAMPLES",
    "MIN_REQUESTS",
    "OLDEST_MESSAGE_S",
    "P99_LATENCY_S",
    "QUEUE_WAIT_P95_S",
    "TAKEOVERS",
    "ApiAlarms",
    "JobAlarms",
    "QueueAlarms",
    "ServiceDashboard",
    "container_insights",
    "job_metric",
    "job_widgets",
    "notify",
]

MINUTE = Duration.minutes(1)
# Share of a target group's requests answered 5xx, over a minute, that is an incident, in
# any minute with a request: a canary gets 10% of the traffic, so at low traffic it sees a
# request or two a minute, and a floor of ten would promote one that fails them all. Two
# such minutes of three are needed, so one failed request alone rolls nothing back.
FIVE_XX_PERCENT = 5
MIN_REQUESTS = 1
FIVE_XX_EXPRESSION = f"IF(FILL(requests, 0) >= {MIN_REQUESTS}, 100 * FILL(errors, 0) / requests, 0)"
# The 99th percentile of the targets' response time (to the first byte; an SSE stream
# answers its headers at once, so streams do not inflate it), judged only in a minute of at
# least 20 responses: below that the p99 is the slowest single request, and one slow
# request (a cold cache, a large listing) is no reason to roll back.
P99_LATENCY_S = 2.0
MIN_LATENCY_SAMPLES = 20
LATENCY_EXPRESSION = f"IF(FILL(samples, 0) >= {MIN_LATENCY_SAMPLES}, p99, 0)"
# A message waiting this long means work has stalled: a parked parent waits on a fresh
# message and a running job's chunk lasts minutes, so no healthy message gets this old.
OLDEST_MESSAGE_S = 30 * 60
# The jobs' own metrics (EMF, namespace Longhaul, dimension `service`; `state` beside it for
# finishes). A failure rate over 10% in three five-minute periods of five or more finished
# jobs: one failed job of a quiet hour is the user's input, not an incident.
EMF_NAMESPACE = NAMESPACE
FIVE_MINUTES = Duration.minutes(5)
JOB_FAILURE_PERCENT = 10
MIN_JOBS = 5
JOB_FAILURE_EXPRESSION = f"IF(FILL(finished, 0) >= {MIN_JOBS}, 100 * FILL(failed, 0) / finished, 0)"
# Work waiting this long to start, at the 95th percentile over 15 minutes, means the
# workers do not keep up (scaling at its ceiling, or tasks failing to start).
QUEUE_WAIT_P95_S = 600
# Takeovers are runs restarted after their worker died (Spot, OOM, a crash); lost leases
# are runs stopped because a worker could not renew in time (a stalled loop, throttling).
# A few are the platform working; this many in 15 minutes is a pattern to look at.
TAKEOVERS = 5
LEASES_LOST = 3
# (metric name, dimension keys beyond `service`) the alarms and the dashboard read: the
# kit's list of what operators watch, which the worker publishes (tests/e2e/test_emf_metrics.py).
JOB_METRICS = WATCHED


def _alarm(
    scope: Construct,
    construct_id: str,
    *,
    metric: cloudwatch.IMetric,
    threshold: float,
    description: str,
    comparison: cloudwatch.ComparisonOperator = (
        cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
    ),
    periods: int = 3,
    datapoints: int = 2,
) -> cloudwatch.Alarm:
    return cloudwatch.Alarm(
        scope,
        construct_id,
        metric=metric,
        threshold=threshold,
        comparison_operator=comparison,
        evaluation_periods=periods,
        datapoints_to_alarm=datapoints,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=description,
    )


def container_insights(
    metric_name: str, *, cluster_name: str, service: ecs.IBaseService
) -> cloudwatch.Metric:
    """A Container Insights metric of one ECS service, per minute."""
    return cloudwatch.Metric(
        namespace="ECS/ContainerInsights",
        metric_name=metric_name,
        dimensions_map={"ClusterName": cluster_name, "ServiceName": service.service_name},
        statistic="Average",
        period=MINUTE,
    )


class ApiAlarms(Construct):
    """Target 5xx rate, p99 latency and unhealthy hosts of each of the API's two target
    groups, by group. Blue and green swap at every deployment: all six notify, and the three
    of the group the new revision goes to roll it back (`ProductionRule`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target_groups: dict[str, elbv2.ApplicationTargetGroup],
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        self.by_group: dict[str, list[cloudwatch.Alarm]] = {}
        for name, group in target_groups.items():
            errors = group.metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=MINUTE, statistic="Sum"
            )
            requests = group.metrics.request_count(period=MINUTE, statistic="Sum")
            rate = cloudwatch.MathExpression(
                expression=FIVE_XX_EXPRESSION,
                using_metrics={"errors": errors, "requests": requests},
                period=MINUTE,
                label=f"{name} target 5xx %",
            )
            latency = cloudwatch.MathExpression(
                expression=LATENCY_EXPRESSION,
                using_metrics={
                    "p99": group.metrics.target_response_time(period=MINUTE, statistic="p99"),
                    "samples": group.metrics.target_response_time(
                        period=MINUTE, statistic="SampleCount"
                    ),
                },
                period=MINUTE,
                label=f"{name} p99 response time (s), {MIN_LATENCY_SAMPLES}+ responses",
            )
            self.by_group[name] = [
                _alarm(
                    self,
                    f"{name}5xxRate",
                    metric=rate,
                    threshold=FIVE_XX_PERCENT,
                    description=f"More than {FIVE_XX_PERCENT}% of {name}'s requests got a 5xx",
                ),
                _alarm(
                    self,
                    f"{name}P99Latency",
                    metric=latency,
                    threshold=P99_LATENCY_S,
                    description=(
                        f"{name}'s p99 response time is over {P99_LATENCY_S} s in a minute of "
                        f"{MIN_LATENCY_SAMPLES} or more responses"
                    ),
                ),
                _alarm(
                    self,
                    f"{name}UnhealthyHosts",
                    metric=group.metrics.unhealthy_host_count(period=MINUTE, statistic="Maximum"),
                    threshold=1,
                    comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    description=f"{name} has targets failing the health check (/healthz)",
                ),
            ]
            self.alarms += self.by_group[name]


class QueueAlarms(Construct):
    """Dead letters waiting, and work waiting too long."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = _alarm(
            self,
            "DeadLetters",
            metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=MINUTE, statistic="Maximum"
            ),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            periods=1,
            datapoints=1,
            description="Messages are waiting in the dead-letter queue (see docs/jobs.md)",
        )
        self.oldest_message = _alarm(
            self,
            "OldestMessage",
            metric=queue.metric_approximate_age_of_oldest_message(
                period=MINUTE, statistic="Maximum"
            ),
            threshold=OLDEST_MESSAGE_S,
            periods=5,
            datapoints=5,
            description=f"A message has waited over {OLDEST_MESSAGE_S // 60} minutes",
        )
        self.alarms = [self.dead_letters, self.oldest_message]


def job_metric(
    service: str,
    name: str,
    *,
    statistic: str = "Sum",
    period: Duration = FIVE_MINUTES,
    label: str | None = None,
    **dimensions: str,
) -> cloudwatch.Metric:
    """One of the jobs' EMF metrics of `service` (JOB_METRICS names those published)."""
    return cloudwatch.Metric(
        namespace=EMF_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service, **dimensions},
        statistic=statistic,
        period=period,
        label=label,
    )


class JobAlarms(Construct):
    """The jobs' failure rate, queue wait p95, takeovers and lost leases of one service."""

    def __init__(self, scope: Construct, construct_id: str, *, service: str) -> None:
        super().__init__(scope, construct_id)
        self.failure_rate = _alarm(
            self,
            "JobFailureRate",
            metric=cloudwatch.MathExpression(
                expression=JOB_FAILURE_EXPRESSION,
                using_metrics={
                    "finished": job_metric(service, "jobs.finished"),
                    "failed": job_metric(service, "jobs.finished", state="failed"),
                },
                period=FIVE_MINUTES,
                label=f"{service} jobs failed %",
            ),
            threshold=JOB_FAILURE_PERCENT,
            description=(
                f"More than {JOB_FAILURE_PERCENT}% of {service}'s jobs failed in five minutes "
                f"of {MIN_JOBS} or more (GET /jobs?state=failed says why)"
            ),
        )
        self.queue_wait = _alarm(
            self,
            "QueueWaitP95",
            metric=job_metric(service, "jobs.queue_wait", statistic="p95"),
            threshold=QUEUE_WAIT_P95_S,
            description=(
                f"{service}'s jobs waited over {QUEUE_WAIT_P95_S // 60} minutes to start at the "
                "95th percentile for 15 minutes: the workers do not keep up"
            ),
        )
        self.takeovers, self.leases_lost = (
            _alarm(
                self,
                construct_id,
                metric=job_metric(service, metric, period=Duration.minutes(15)),
                threshold=threshold,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                periods=1,
                datapoints=1,
                description=f"{threshold} or more of {service}'s runs {what} in 15 minutes",
            )
            for construct_id, metric, threshold, what in (
                (
                    "Takeovers",
                    "jobs.takeovers",
                    TAKEOVERS,
                    "were taken over from dead workers (Spot, out of memory, crashes: see "
                    "the workers' stopped reasons)",
                ),
                (
                    "LeasesLost",
                    "jobs.leases_lost",
                    LEASES_LOST,
                    "lost their lease (a worker that could not renew in time: a stalled loop "
                    "or throttling)",
                ),
            )
        )
        self.alarms = [self.failure_rate, self.queue_wait, self.takeovers, self.leases_lost]


def job_widgets(service: str) -> list[cloudwatch.IWidget]:
    """The dashboard's row of jobs: throughput and failures, waits, restarts."""
    minute = Duration.minutes(1)
    return [
        cloudwatch.GraphWidget(
            title="Jobs",
            left=[
                job_metric(service, "jobs.started", period=minute, label="started"),
                job_metric(service, "jobs.finished", period=minute, label="finished"),
                job_metric(service, "jobs.finished", period=minute, label="failed", state="failed"),
                job_metric(service, "jobs.dlq_arrivals", period=minute, label="dead-lettered"),
            ],
        ),
        cloudwatch.GraphWidget(
            title="Queue wait and duration (s)",
            left=[
                job_metric(
                    service, "jobs.queue_wait", statistic=s, period=minute, label=f"wait {s}"
                )
                for s in ("p50", "p95")
            ],
            right=[
                job_metric(
                    service, "jobs.duration", statistic="p95", period=minute, label="duration p95"
                )
            ],
        ),
        cloudwatch.GraphWidget(
            title="Takeovers, lost leases, retries",
            left=[
                job_metric(service, name, period=minute, label=name.removeprefix("jobs."))
                for name in ("jobs.takeovers", "jobs.leases_lost", "jobs.retries")
            ],
        ),
    ]


def notify(topic: sns.ITopic, alarms: Iterable[cloudwatch.Alarm]) -> None:
    """Send each alarm's state changes (into alarm and back to OK) to the topic."""
    action = actions.SnsAction(topic)
    for alarm in alarms:
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)


class ServiceDashboard(Construct):
    """One page per service: the API's traffic and errors, the queue, the tasks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        cluster_name: str,
        target_groups: dict[str, elbv2.ApplicationTargetGroup],
        api: ecs.FargateService,
        worker: ecs.FargateService | None,
        queue: sqs.IQueue | None,
        gpu_worker: tuple[ecs.BaseService, str] | None = None,
        dead_letter_queue: sqs.IQueue | None,
        backlog_per_task: cloudwatch.IMetric | None,
        alarms: list[cloudwatch.Alarm],
        jobs_of: str | None = None,
    ) -> None:
        """`jobs_of`: the service whose jobs' metrics get a row (a service with a queue)."""
        super().__init__(scope, construct_id)
        groups = list(target_groups.items())
        services: list[tuple[str, ecs.BaseService]] = [("api", api)]
        services += [("worker", worker)] if worker else []
        # each service's cluster: the GPU worker runs in its own (gpu_worker.py)
        clusters = {"api": cluster_name, "worker": cluster_name}
        if gpu_worker is not None:
            services.append(("gpu-worker", gpu_worker[0]))
            clusters["gpu-worker"] = gpu_worker[1]
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dashboard.add_widgets(
            cloudwatch.TextWidget(markdown=f"# {name}", width=24, height=1),
            cloudwatch.GraphWidget(
                title="API requests",
                left=[g.metrics.request_count(period=MINUTE, label=n) for n, g in groups],
            ),
            cloudwatch.GraphWidget(
                title="API target 5xx",
                left=[
                    g.metrics.http_code_target(
                        elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=MINUTE, label=n
                    )
                    for n, g in groups
                ],
            ),
            cloudwatch.GraphWidget(
                title="API p99 response time (s)",
                left=[
                    g.metrics.target_response_time(period=MINUTE, statistic="p99", label=n)
                    for n, g in groups
                ],
            ),
            cloudwatch.GraphWidget(
                title="Running tasks",
                left=[
                    container_insights(
                        "RunningTaskCount", cluster_name=clusters[role], service=s
                    ).with_(label=role)
                    for role, s in services
                ],
            ),
        )
        if queue is not None and dead_letter_queue is not None:
            queue_widgets: list[cloudwatch.IWidget] = [
                cloudwatch.GraphWidget(
                    title="Queue",
                    left=[
                        queue.metric_approximate_number_of_messages_visible(
                            period=MINUTE, label="visible"
                        ),
                        queue.metric_approximate_number_of_messages_not_visible(
                            period=MINUTE, label="in flight"
                        ),
                        dead_letter_queue.metric_approximate_number_of_messages_visible(
                            period=MINUTE, label="dead letters"
                        ),
                    ],
                ),
                cloudwatch.GraphWidget(
                    title="Oldest message (s)",
                    left=[
                        queue.metric_approximate_age_of_oldest_message(
                            period=MINUTE, statistic="Maximum"
                        )
                    ],
                ),
            ]
            if backlog_per_task is not None:
                queue_widgets.append(
                    cloudwatch.GraphWidget(title="Backlog per task", left=[backlog_per_task])
                )
            dashboard.add_widgets(*queue_widgets)
        if jobs_of is not None:
            dashboard.add_widgets(*job_widgets(jobs_of))
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="CPU %",
                left=[s.metric_cpu_utilization(period=MINUTE, label=role) for role, s in services],
            ),
            cloudwatch.GraphWidget(
                title="Memory %",
                left=[
                    s.metric_memory_utilization(period=MINUTE, label=role) for role, s in services
                ],
            ),
            cloudwatch.AlarmStatusWidget(alarms=list(alarms), title="Alarms", width=8),
        )
