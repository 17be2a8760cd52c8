"""weakloc sub-commands: detector."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
