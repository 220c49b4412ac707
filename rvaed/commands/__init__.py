"""One module per `rvaed` subcommand: HELP, add_arguments(parser), run(args) -> exit code."""
