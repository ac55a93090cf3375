"""``python -m mlcustody`` is the `custody` command."""

from mlcustody.interfaces.cli.app import main

main()
