"""Benchmarks behind `rvaed bench NAME`: each module has HELP, add_arguments(parser) and
run(args) -> dict of figures (it prints its own readable table). They report; they never fail
on a slow machine."""
