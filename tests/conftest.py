pytest_plugins = ["pytester"]

# Experiment files under tests/data are inputs of the tests, not suites to run.
collect_ignore_glob = ["data/*"]
