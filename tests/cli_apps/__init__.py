"""App modules the CLI tests serve with `--app-dir tests/cli_apps` (as top-level modules)."""
