"""The `fspo` command: the entry point (`main`) and one module per subcommand."""

from fspo_train.cli.main import SUBCOMMAND_MODULES, build_parser, main

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]
