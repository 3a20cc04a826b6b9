#!/usr/bin/env python3
"""podman, for Debian's podman-compose 1.0.3: `python -m longhaul.local.podman_host ARGS`
runs `podman ARGS`, and this file, executable, is what `podman-compose --podman-path`
takes (docs/compose.md). It imports nothing but the standard library, so its `#!` line may
run it with any Python 3.

That podman-compose puts every container on the project's network (`--net <project>_default
--network-alias <service>`) even when the service says `network_mode: host`, and podman
refuses the two together ("cannot set multiple networks without bridge network mode";
podman-compose issues #397 and #1186, fixed in later releases). For a `run` or `create`
whose options ask for the host's network, this drops those two options and runs podman
with the rest unchanged; every other command passes through as it is.
"""

from __future__ import annotations

import itertools
import os
import sys

__all__ = ["FLAGS", "main", "options_end", "podman_argv", "without_project_network"]

# The options without a value that podman-compose 1.0.3 may write before the image.
FLAGS = {"-d", "--detach", "--rm", "--read-only", "--init", "--no-healthcheck", "-i", "-t"}


def options_end(argv: list[str]) -> int:
    """Where a run's options end: at the image, the first word that is neither an option
    nor an option's value (podman-compose writes each option as `--name value`,
    `--name=value` or one of FLAGS)."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 1 if argv[index] in FLAGS or "=" in argv[index] else 2
    return index


def without_project_network(options: list[str]) -> list[str]:
    """`options` less `--net NAME` and `--network-alias NAME` when they ask for the host's
    network too."""
    pairs = list(itertools.pairwise(options))
    if ("--network", "host") not in pairs and "--network=host" not in options:
        return options
    kept: list[str] = []
    index = 0
    while index < len(options):
        if options[index] in ("--net", "--network-alias"):
            index += 2
            continue
        kept.append(options[index])
        index += 1
    return kept


def podman_argv(argv: list[str]) -> list[str]:
    """The podman command for podman-compose's `argv`: a host-network `run` or `create`
    less its project network, anything else as it is."""
    if argv and argv[0] in ("run", "create"):
        end = 1 + options_end(argv[1:])
        argv = [argv[0], *without_project_network(argv[1:end]), *argv[end:]]
    return ["podman", *argv]


def main() -> None:
    """Run podman, in this process's place, with this process's arguments (less the
    project network of a host-network run)."""
    command = podman_argv(sys.argv[1:])
    os.execvp(command[0], command)  # noqa: S606 - podman itself, in its place


if __name__ == "__main__":
    main()
