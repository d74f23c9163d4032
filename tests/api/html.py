"""Reading the dashboard's server-rendered HTML in tests (the standard library's parser)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    """Collects the text of each cell of the table whose ``id`` is ``table_id``, row by row."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self.inside:
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, table_id: str) -> list[dict[str, str]]:
    """The rows of ``<table id=table_id>`` in ``html`` as dicts keyed by its header cells
    (``[]`` when the table is missing or has only its header)."""
    parser = _Tables(table_id)
    parser.feed(html)
    if not parser.rows:
        return []
    header, *body = parser.rows
    return [dict(zip(header, row)) for row in body]
