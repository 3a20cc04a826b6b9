"""`python -m longhaul_media --role api|worker|all`."""

from longhaul_media.service import SERVICE

SERVICE.main()
