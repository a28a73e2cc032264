"""Corpus sources: fetching the Debian docs is idempotent and names the failing command."""
import pytest

from specjax.training import sources


def test_fetch_debian_docs_is_idempotent_and_names_the_failing_command(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no apt-get, no dpkg-deb
  with pytest.raises(RuntimeError, match="apt-get download python3.11-doc"):
    sources.fetch_debian_docs(str(tmp_path))
  root = tmp_path / sources.DEBIAN_DOC_PACKAGE
  root.mkdir(exist_ok=True)
  (root / ".complete").write_text("done\n")
  assert sources.fetch_debian_docs(str(tmp_path)) == str(root)
