"""`make bench`: every benchmark, one after the other."""

from bench import dispatch, get_job, media, plan

dispatch.main()
get_job.main()
media.main()
plan.main()
