"""The `custody` command line: a thin shell over ``interfaces.sdk.Workspace``."""
