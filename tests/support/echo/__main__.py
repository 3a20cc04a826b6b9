"""`python -m tests.support.echo --role api|worker|all`."""

from tests.support.echo.service import SERVICE

SERVICE.main()
