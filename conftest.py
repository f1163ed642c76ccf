import pytest

# Doctests run over the package; the module entry point would run the CLI when imported.
collect_ignore = ["prefaudit/__main__.py"]


@pytest.fixture(autouse=True)
def _isolated_models(request, monkeypatch, tmp_path_factory):
    """Audits in tests embed nothing unless a test asks (the real model takes seconds per
    audit on CPU); tests marked ``models`` get the default. The embedding cache goes to a
    temporary folder, never the user's."""
    monkeypatch.setenv("PREFAUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    if request.node.get_closest_marker("models") is None:
        monkeypatch.setenv("PREFAUDIT_EMBEDDING_MODEL", "off")
