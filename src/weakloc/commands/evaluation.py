"""weakloc sub-commands: evaluation."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
