"""`make bench`: every benchmark, one after the other."""

from bench import analytics, dispatch, get_job, media, plan, training

dispatch.main()
get_job.main()
media.main()
plan.main()
training.main()
analytics.main()
