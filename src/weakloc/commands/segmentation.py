"""weakloc sub-commands: segmentation."""


def register(subparsers) -> None:
    """Add this topic's sub-commands to ``subparsers``."""
