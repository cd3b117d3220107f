"""The `forescale` command line (Typer + Rich): one app, a module per command group."""
