"""`make bench`: every benchmark, one after the other."""

from bench import dispatch, get_job

dispatch.main()
get_job.main()
