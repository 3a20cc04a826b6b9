"""`python -m longhaul_analytics --role api|worker|all`."""

from longhaul_analytics.service import SERVICE

SERVICE.main()
