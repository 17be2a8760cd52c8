"""weakloc sub-commands: data."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
