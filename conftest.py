# Doctests run over the package; the module entry point would run the CLI when imported.
collect_ignore = ["prefaudit/__main__.py"]
