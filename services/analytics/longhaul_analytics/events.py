"""The analytics service's facts."""

from longhaul.jobs.events import register_job_facts

JOB_FACTS = register_job_facts("analytics")
