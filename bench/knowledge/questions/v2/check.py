"""Check the v2 question sets against the Debian docs: every source page exists and the first one contains
the question's `evidence` phrase (the passage that answers it was found by reading the page).

    python bench/knowledge/questions/v2/check.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lxml.html

ROOTS = {
    "pgdocs": Path("/usr/share/doc/postgresql-doc-15/html"),
    "pydocs": Path("/usr/share/doc/python3.11-doc/html"),
}


def main() -> int:
    problems = 0
    for path in sorted(Path(__file__).parent.glob("*.jsonl")):
        root = ROOTS[path.name.split("-")[0]]
        for n, line in enumerate(path.read_text().splitlines(), 1):
            item = json.loads(line)
            pages = [root / s for s in item["sources"]]
            missing = [str(p) for p in pages if not p.is_file()]
            text = lxml.html.document_fromstring(pages[0].read_bytes()).text_content() if not missing else ""
            if missing or item["evidence"].lower() not in text.lower():
                problems += 1
                print(f"{path.name}:{n}: {missing or 'evidence not on ' + item['sources'][0]}")
    print(f"{problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
