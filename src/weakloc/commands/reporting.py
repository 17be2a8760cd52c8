"""weakloc sub-commands: reporting."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
