"""A small mixed corpus written by the tests: real PDF and DOCX files, plus broken ones."""

from __future__ import annotations

from pathlib import Path


def make_pdf(pages: list[str]) -> bytes:
    """A minimal but valid PDF (one Helvetica text line per page), with a correct xref table."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def long(sentence: str) -> str:
    """A section long enough to be a chunk of its own (the chunker merges tiny sections)."""
    return " ".join([sentence] * 8)


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Backup Guide", level=1)
    d.add_paragraph(long("Use pg_dump to export one database to a script file."))
    d.add_heading("Restoring", level=2)
    d.add_paragraph(long("Use pg_restore to load an archive made by pg_dump."))
    d.save(str(path))


def write_corpus(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "txt": root / "notes.txt",
        "md": root / "vacuum.md",
        "html": root / "indexes.html",
        "pdf": root / "replication.pdf",
        "docx": root / "backup.docx",
        "bad_pdf": root / "broken.pdf",
        "empty": root / "empty.txt",
    }
    files["txt"].write_text("The lighthouse keeper polished the great lamp every evening before the storm.\n")
    files["md"].write_text(
        f"# Routine Vacuuming\n\n{long('VACUUM reclaims storage occupied by dead tuples.')}\n\n"
        "## The Autovacuum Daemon\n\n"
        f"{long('The autovacuum launcher starts workers that vacuum tables automatically.')}\n"
    )
    files["html"].write_text(
        "<html><head><title>Index Types</title><script>var x = 'ignored';</script></head><body>"
        "<div class='navheader'>Prev Next</div><h1>Index Types</h1><p>"
        + long("A B-tree index handles equality and range queries.")
        + "</p><h2>GIN Indexes</h2><p>"
        + long("GIN indexes are inverted indexes for full text search and arrays.")
        + "</p></body></html>"
    )
    files["pdf"].write_bytes(
        make_pdf(["Streaming replication ships WAL records.", "A standby server replays WAL."])
    )
    make_docx(files["docx"])
    files["bad_pdf"].write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref")
    files["empty"].write_bytes(b"")
    return files
