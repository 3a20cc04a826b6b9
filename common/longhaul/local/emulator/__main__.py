"""`python -m longhaul.local.emulator`: see server.py."""

from longhaul.local.emulator.server import main

main()
