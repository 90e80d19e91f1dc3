"""A report as a list of blocks (headings, paragraphs, lists, tables, figures, expandable details),
rendered twice: as Markdown and as one self-contained HTML page whose figures are PNG files beside
it.

The HTML reads like a paper's figure page: a table of contents of the level-2 headings, figures
at full width (or side by side in a `FigureRow`), tables that scroll sideways inside the page
instead of squeezing their columns, and a print stylesheet. Hand-written because the report needs
only these block types; a template engine would be a dependency for a hundred lines.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.text.lower()).strip("-")


@dataclass
class Para:
    text: str
    css: str = ""  # "warning", "note" (highlighted in HTML, a quote in Markdown) or "lead"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    wrap: tuple[int, ...] = ()  # columns of free text, which may wrap (the others never do)


@dataclass
class Figure:
    path: str  # relative to the report, e.g. figures/curves_resnet.png
    caption: str
    alt: str = ""  # what the figure shows, for screen readers (default: the caption)


@dataclass
class FigureRow:
    """Figures side by side on a wide screen, one under the other on a narrow one or in print;
    `widths` are their shares of the row."""

    figures: list[Figure]
    widths: tuple[float, ...] = ()


@dataclass
class Details:
    """Expandable items: a one-line summary each, the full text when opened (HTML `<details>`);
    a list in Markdown."""

    items: list[tuple[str, str]]


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


# ------------------------------------------------------------------------------------ Markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(b: Table) -> list[str]:
    out = [f"*{b.caption}*", ""] if b.caption else []
    out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
    out.append("|" + "|".join("---" for _ in b.header) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
    return out + [""]


def _md_figure(f: Figure) -> list[str]:
    return [f"![{f.alt or f.caption}]({f.path})", "", f"*{f.caption}*", ""]


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * b.level} {b.text}", ""]
        elif isinstance(b, Para):
            out += [("> " if b.css in ("warning", "note") else "") + b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Details):
            out += [f"- **{summary}**: {body}" for summary, body in b.items] + [""]
        elif isinstance(b, Table):
            out += _md_table(b)
        elif isinstance(b, Figure):
            out += _md_figure(b)
        elif isinstance(b, FigureRow):
            for f in b.figures:
                out += _md_figure(f)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1320px;
       margin: 0.6em auto 2em; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.45em; margin: 0.2em 0 0.25em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 1.8em; font-size: 1.25em; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
nav.toc { font-size: 0.85em; margin-bottom: 0.4em; }
nav.toc a { margin-right: 0.9em; white-space: nowrap; color: #2a5db0; text-decoration: none; }
p.lead { margin: 0.3em 0 0.5em; }
.scroll { overflow-x: auto; margin: 0.3em 0 1.4em; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.88em; }
p.caption { font-style: italic; font-size: 0.9em; margin: 0.8em 0 0.2em; }
th, td { border: 1px solid #ccc; padding: .2em .55em; text-align: left; vertical-align: top;
         white-space: nowrap; }
td.wrap { white-space: normal; min-width: 24em; max-width: 48em; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 0.6em 0 1.6em; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-style: italic; font-size: 0.88em; }
.figrow { display: flex; gap: 1.2em; align-items: flex-start; }
.figrow figure { margin-top: 0.2em; }
details { margin: 0.15em 0; }
details summary { cursor: pointer; }
details p { margin: 0.2em 0 0.5em 1.2em; }
p.warning { background: #fff3cd; border-left: 4px solid #d39e00; padding: .4em .8em; }
p.note { background: #eef4fb; border-left: 4px solid #4a7ab5; padding: .4em .8em; }
@media (max-width: 900px) { .figrow { display: block; } .figrow figure { width: auto !important; } }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; }
  nav.toc { display: none; }
  .scroll { overflow: visible; }
  th, td { white-space: normal; }
  table { font-size: 8pt; }
  .figrow { display: block; }
  .figrow figure { width: auto !important; }
  figure, table, tr, details { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

# Closed <details> print as their summaries only: open them all for printing.
_PRINT_SCRIPT = ("<script>window.addEventListener('beforeprint', function () {"
                 "document.querySelectorAll('details').forEach(function (d) { d.open = true; });"
                 "});</script>")


def _html_table(b: Table) -> str:
    e = html.escape
    # the caption outside the scrolling box, so it wraps at the page's width, not the table's
    rows = [f'<p class="caption">{e(b.caption)}</p>'] if b.caption else []
    rows.append('<div class="scroll"><table>')
    rows.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.header)
                + "</tr></thead><tbody>")
    for row in b.rows:
        rows.append("<tr>" + "".join(
            f'<td class="wrap">{e(str(c))}</td>' if i in b.wrap else f"<td>{e(str(c))}</td>"
            for i, c in enumerate(row)) + "</tr>")
    rows.append("</tbody></table></div>")
    return "\n".join(rows)


def _html_figure(f: Figure, width: float | None = None) -> str:
    e = html.escape
    style = f' style="width: {100 * width:.0f}%"' if width else ""
    return (f'<figure{style}><img src="{e(f.path)}" alt="{e(f.alt or f.caption)}">'
            f"<figcaption>{e(f.caption)}</figcaption></figure>")


def _html_block(b) -> str:
    e = html.escape
    if isinstance(b, Heading):
        return f'<h{b.level} id="{e(b.anchor)}">{e(b.text)}</h{b.level}>'
    if isinstance(b, Para):
        cls = f' class="{b.css}"' if b.css else ""
        return f"<p{cls}>{e(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Details):
        return "\n".join(f"<details><summary>{e(s)}</summary><p>{e(t)}</p></details>"
                         for s, t in b.items)
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Figure):
        return _html_figure(b)
    if isinstance(b, FigureRow):
        widths = b.widths or tuple(1 / len(b.figures) for _ in b.figures)
        return ('<div class="figrow">' + "".join(
            _html_figure(f, w) for f, w in zip(b.figures, widths)) + "</div>")
    raise TypeError(f"not a report block: {b!r}")


def to_html(doc: Document) -> str:
    e = html.escape
    toc = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 2]
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(doc.title)}</title>", f"<style>{_CSS}</style>", _PRINT_SCRIPT, "</head>",
           "<body>", f"<h1>{e(doc.title)}</h1>"]
    if toc:
        out.append('<nav class="toc">' + "".join(
            f'<a href="#{e(h.anchor)}">{e(h.text)}</a>' for h in toc) + "</nav>")
    out += [_html_block(b) for b in doc.blocks]
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
