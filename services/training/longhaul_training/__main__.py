"""`python -m longhaul_training --role api|worker|all`."""

from longhaul_training.service import SERVICE

SERVICE.main()
