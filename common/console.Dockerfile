# syntax=docker/dockerfile:1.7
# The web console on AWS (docs/console.md, deploy/longhaul_deploy/console_stack.py): the
# console is part of the kit, so its image is Dockerfile.base's (Python, the kit and its
# pins, the service user, /scratch) with the console as what it runs. It adds no file and
# no package: the code the browser tests run is the code deployed.
FROM longhaul-base
ENTRYPOINT ["python", "-m", "longhaul.console"]
