"""The `axp` command line: argument parsing and presentation over pytest_axp."""
