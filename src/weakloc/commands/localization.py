"""weakloc sub-commands: localization."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
