"""The Click commands, one module per area; each registers itself on ``edgekit.cli.cli``."""
