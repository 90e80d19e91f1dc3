"""A report as a list of blocks (headings, paragraphs, lists, tables, figures), rendered twice:
as Markdown and as one self-contained HTML page whose figures are PNG files beside it.

Hand-written because the report needs only these five block types; a template engine would be a
dependency for forty lines.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    css: str = ""  # "warning" or "note": highlighted in HTML, a quote in Markdown


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: str  # relative to the report, e.g. figures/curves_resnet.png
    caption: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * b.level} {b.text}", ""]
        elif isinstance(b, Para):
            out += [("> " if b.css else "") + b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.path})", "", f"*{b.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 0.9em; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-style: italic; font-size: 0.9em; }
p.warning { background: #fff3cd; border-left: 4px solid #d39e00; padding: .5em .8em; }
p.note { background: #eef4fb; border-left: 4px solid #4a7ab5; padding: .5em .8em; }
"""


def to_html(doc: Document) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(doc.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{e(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            anchor = "".join(c if c.isalnum() else "-" for c in b.text.lower()).strip("-")
            out.append(f'<h{b.level} id="{e(anchor)}">{e(b.text)}</h{b.level}>')
        elif isinstance(b, Para):
            cls = f' class="{b.css}"' if b.css else ""
            out.append(f"<p{cls}>{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            rows = ["<table>"]
            if b.caption:
                rows.append(f"<caption>{e(b.caption)}</caption>")
            rows.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.header)
                        + "</tr></thead><tbody>")
            rows += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                     for row in b.rows]
            rows.append("</tbody></table>")
            out.append("\n".join(rows))
        elif isinstance(b, Figure):
            out.append(f'<figure><img src="{e(b.path)}" alt="{e(b.caption)}">'
                       f"<figcaption>{e(b.caption)}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
