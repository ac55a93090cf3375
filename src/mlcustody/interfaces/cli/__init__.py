"""The `custody` command line: a thin shell over ``workspace.Workspace``."""
