"""`ailab ingest` reads only what it should: no link out of the folders given (unless --follow-links), no
hidden files or folders (unless --include-hidden), no key files, no extensionless files unless well-known
or asked for; and it reports each skipped file with the reason. Through the real CLI."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from ailab.cli import app

KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def layout(tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    secret = home / ".ssh" / "id_rsa"
    secret.write_text(KEY)
    secret.chmod(0o600)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.md").write_text("# Private\n\nnot for the collection\n")
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / ".git" / "config.txt").write_text("hidden folder content")
    (docs / "guide.md").write_text("# Guide\n\nThe lighthouse keeper polished the lamp.\n")
    (docs / "README").write_text("Readme of the docs folder.\n")
    (docs / "notes").write_text("extensionless notes\n")
    (docs / "blob").write_bytes(b"\x00\x01\x02binary")
    (docs / ".env.txt").write_text("TOKEN=abc\n")
    (docs / "server.pem").write_text(KEY)
    (docs / "pasted.txt").write_text(f"here is my key\n{KEY}")
    os.symlink(secret, docs / "key")
    os.symlink(secret, docs / "key.txt")
    os.symlink(outside, docs / "linked")
    os.symlink(docs / "guide.md", docs / "same-guide.md")  # inside the folder: the same document
    return docs, outside


def test_ingest_skips_links_out_hidden_keys_and_extensionless(write_config, tmp_path, monkeypatch):
    config, data_dir = write_config("embedded")
    monkeypatch.setenv("AILAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AILAB_CONFIG", str(config))
    docs, _ = layout(tmp_path)

    report = run("ingest", str(docs), "-c", "kb", "--allow-failures")  # pasted.txt fails
    assert report["added"] == 2, report  # guide.md and README
    skipped = {os.path.basename(s["source"]): s["reason"] for s in report["skipped"]}
    assert "outside" in skipped["key"] and "outside" in skipped["key.txt"]
    assert "outside" in skipped["linked"]
    assert "hidden" in skipped[".git"] and "hidden" in skipped[".env.txt"]
    assert "extension" in skipped["notes"] and "key" in skipped["server.pem"]
    assert "blob" in skipped
    failed = {os.path.basename(f["source"]): f["reason"] for f in report["failed"]}
    assert "private key" in failed["pasted.txt"]
    hits = run("search", "OPENSSH PRIVATE KEY", "-c", "kb", "--mode", "sparse")
    assert hits == [] or all("PRIVATE KEY" not in h["text"] for h in hits)

    again = run(
        "ingest",
        str(docs),
        "-c",
        "kb",
        "--follow-links",
        "--include-hidden",
        "--extensionless",
        "--allow-failures",
    )
    added = again["added"]
    assert added == 4, again  # outside/private.md, .git/config.txt, .env.txt, notes
    skipped = {os.path.basename(s["source"]): s["reason"] for s in again["skipped"]}
    assert "key" in skipped["key"]  # a key file, even when asked to follow (key.txt: the same file)
    assert "not text" in skipped["blob"]
    hits = run("search", "OPENSSH PRIVATE KEY", "-c", "kb", "--mode", "sparse")
    assert all("PRIVATE KEY" not in h["text"] for h in hits)
