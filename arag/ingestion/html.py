"""HTML read as the text a reader sees: the page's own content, without the site around it.

A page of a documentation site (Sphinx, MkDocs, rustdoc, Javadoc) wraps its content in the site:
navigation bars, a sidebar with the table of contents, a search box, a footer, a permalink sign
after every heading. Read as it stands, that text repeats on every page, costs encoder passes and
prompt tokens, and makes chunks of its own that a search can return; and code blocks, their
whitespace collapsed like prose, lose their lines.

What is read: the page's main region (``<main>``, or elements marked ``role="main"``) where it
has one, else its body less navigation (``nav``, ``aside``, ``footer``, and elements whose role is
navigation, search, banner, content information or complementary). Dropped everywhere: scripts,
styles, buttons and menus, hidden elements, headings' permalink anchors (``¶``), Sphinx's
table-of-contents lists (as the reST reader drops ``toctree``) and its index pages' link tables.
A page where that leaves no text is read again with less taken out, so no page is lost to a
region left open; a main region of nothing but such lists is the page's title, as the reST
reader reads a page of nothing but a table of contents.

How it is laid out, as the Markdown and reST readers write it: code (``<pre>``) keeps its lines,
indented by four spaces; inline code is shown as `` `code` ``; list items start their own
paragraph with "- ", or their number in an ordered list, and what an item holds besides its first
line (more paragraphs, code, lists nested in it) is indented under its text, so a nested item
reads as part of the one it belongs to; table cells are separated by " | ", a
row to a line; an admonition's title leads its text ("Note: ..."). A heading followed at once by
a deeper one heads the sections under it (:mod:`arag.ingestion.headings`). The title is the first
level-1 heading read (else the first heading) where ``<title>`` begins with it, so that the site's
name is left out ("Built-in Functions — Python 3.11.2 documentation" is titled "Built-in
Functions"), else ``<title>``, else that heading.

Example:
    >>> title, sections = read_html('<html><head><title>Paths — Docs</title></head><body>'
    ...     '<nav>Home | Index</nav><main><h1>Paths<a class="headerlink" href="#p">¶</a></h1>'
    ...     '<p>Use <code>join</code> to build paths:</p><pre>join("a",\\n     "b")</pre></main>'
    ...     '<footer>© Docs team</footer></body></html>')
    >>> title, sections
    ('Paths', [('Paths', 'Use `join` to build paths:\\n\\n    join("a",\\n         "b")')])
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from arag.ingestion.headings import carry_headings
from arag.ingestion.rst import leading_phrase

#: Never text a reader sees.
_UNSEEN = {"script", "style", "noscript", "template", "svg", "button", "select", "textarea", "iframe", "object"}
#: The site around a page's content.
_CHROME = {"nav", "aside", "footer"}
_CHROME_ROLES = {"navigation", "search", "banner", "contentinfo", "complementary"}
#: Classes of elements that are links or lists a reader passes over: permalink signs after headings
#: (Sphinx, MkDocs, VitePress); Sphinx's table-of-contents lists, and the tables and letter bars of its
#: general and module indexes (link lists to every entry, which its reST sources do not hold).
_UNSEEN_CLASSES = {"headerlink", "header-anchor", "toctree-wrapper", "indextable", "genindex-jumpbox", "modindex-jumpbox"}
#: Elements that end a paragraph where they start and end.
_BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "ul", "ol", "dl",
           "dt", "dd", "table", "caption", "figure", "figcaption", "details", "summary", "form", "fieldset", "address",
           "hr", "center", "body"}
#: Start tags that end an open ``<p>`` (HTML's parsing rules), so a ``<p hidden>`` left open hides only itself.
_ENDS_P = {"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl", "dd", "dt",
           "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup",
           "hr", "li", "listing", "main", "menu", "nav", "ol", "p", "pre", "search", "section", "summary", "table", "ul"}
#: Elements with no end tag: never the start of a region.
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
#: The text of a permalink beside a heading or an entry (Node.js "#", rustdoc "§"), whatever its class.
_PERMALINK_SIGNS = {"¶", "§", "#", "🔗"}
_HEADING = re.compile(r"h[1-6]")
_HAS_MAIN = re.compile(r"<main[\s>/]|\brole\s*=\s*[\"']?main\b", re.IGNORECASE)

#: How much of a page is read, from the most taken out to the least.
MAIN_ONLY, WITHOUT_CHROME, ALL_VISIBLE = "main", "without chrome", "all visible"


def read_html(text: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The title and the ``(heading, body)`` sections of an HTML page, bodies laid out as text."""
    scopes = ([MAIN_ONLY] if _HAS_MAIN.search(text) else []) + [WITHOUT_CHROME, ALL_VISIBLE]
    for scope in scopes:
        page = _Page(scope)
        page.feed(text)
        page.close()
        if page.has_text() or page.entered_main:
            break
    heading_title = page.first_h1 or page.first_heading
    if page.title and heading_title and page.title.startswith(heading_title):
        title = heading_title
    else:
        title = page.title or heading_title
    sections = carry_headings(page.sections, title)
    if not sections and page.entered_main and title:
        # Main content of nothing but a table of contents (a Sphinx index page) is its title, as in reST.
        return title, [(title, title)]
    return title, sections


class _OpenList:
    """A list being read: its next item's number (None where it is bulleted), the column its items'
    markers start at, and the column of the text of the item being read (None between items).
    """

    __slots__ = ("number", "column", "text_column")

    def __init__(self, number: int | None, column: int):
        self.number, self.column = number, column
        self.text_column: int | None = None


class _Page(HTMLParser):
    """One reading of a page at one ``scope``; iterative, so deep nesting costs nothing.

    A region (the main content, or something left out) lasts from its start tag to the end tag
    that closes it: elements of the same name opened inside it are counted, so a ``div`` region
    ends at its own ``</div>``.
    """

    def __init__(self, scope: str):
        super().__init__(convert_charrefs=True)
        self.scope = scope
        self.title: str | None = None
        self.first_h1: str | None = None
        self.first_heading: str | None = None
        #: ``(level, heading, body)`` in reading order, sections without text too (their headings may be carried).
        self.sections: list[tuple[int, str, str]] = []
        #: Whether the page's main region was found (where the scope looks for one).
        self.entered_main = False
        # Open regions, [tag, "main" or "skip", open elements of that tag]: at most a main region and a
        # region left out inside it, since nothing opens inside a region left out, nor a main inside a main.
        self._regions: list[list] = []
        self._title: list[str] | None = None
        self._heading_text: list[str] | None = None
        self._heading_level = ""
        self._heading = ""
        self._level = 0  # the level of the heading of the section being read; 0 before the first
        self._paragraphs: list[str] = []
        self._lines: list[str] = []
        self._line: list[str] = []
        self._lead = ""  # what the next line starts with: "- " for a list item, "Note: " after an admonition's title
        self._pre: list[str] | None = None
        self._admonition_title: list[str] | None = None
        self._cells = 0
        self._links: list[tuple[list[str], int]] = []  # open links: the text they write into, where they start
        self._in_cell = False  # inside a table cell, paragraphs and line breaks are spaces: a row stays one line
        self._lists: list[_OpenList] = []

    # --- regions ---------------------------------------------------------------------------

    def _left_out(self, tag: str, attrs: dict) -> bool:
        if tag in _UNSEEN or "hidden" in attrs or attrs.get("aria-hidden") == "true":
            return True
        if _UNSEEN_CLASSES & set((attrs.get("class") or "").split()):
            return True
        if self.scope == ALL_VISIBLE:
            return False
        return tag in _CHROME or (attrs.get("role") or "").strip().lower() in _CHROME_ROLES

    def _inside(self, kind: str) -> bool:
        return any(region[1] == kind for region in self._regions)

    def _reading(self) -> bool:
        return not self._inside("skip") and (self.scope != MAIN_ONLY or self._inside("main"))

    def _open_region(self, tag: str, attrs: dict) -> None:
        if tag in _ENDS_P and any(region[0] == "p" for region in self._regions):
            self._close_region("p")
        for region in self._regions:
            if region[0] == tag:
                region[2] += 1
        if tag in _VOID or self._inside("skip"):
            return
        if self._left_out(tag, attrs):
            self._regions.append([tag, "skip", 1])
        elif self.scope == MAIN_ONLY and not self._inside("main") and (
                tag == "main" or (attrs.get("role") or "").strip().lower() == "main"):
            self._regions.append([tag, "main", 1])
            self.entered_main = True

    def _close_region(self, tag: str) -> None:
        for region in self._regions:
            if region[0] == tag:
                region[2] -= 1
        for index, region in enumerate(self._regions):
            if region[2] <= 0:  # it ends, and with it every region opened inside it and left open
                del self._regions[index:]
                break

    # --- layout ----------------------------------------------------------------------------

    def _end_line(self) -> None:
        line = _words(self._line)
        self._line = []
        self._cells = 0
        if line:
            self._lines.append(self._line_start() + line)
            self._lead = ""

    def _line_start(self) -> str:
        """What the next line begins with: an item's marker or an admonition's phrase where one waits,
        else the indentation of the list item it belongs to.
        """
        return self._lead or " " * self._indent()

    def _indent(self) -> int:
        """The column text read now starts at: under the text of the list item it belongs to."""
        if not self._lists:
            return 0
        innermost = self._lists[-1]
        # Between items (a list written straight inside another, as many pages do), one step in.
        return innermost.text_column if innermost.text_column is not None else innermost.column + 2

    def _end_paragraph(self) -> None:
        self._end_line()
        if self._lines:
            self._paragraphs.append("\n".join(self._lines))
            self._lines = []

    def _end_section(self) -> None:
        self._end_paragraph()
        if self._paragraphs or self._heading:
            self.sections.append((self._level, self._heading, "\n\n".join(self._paragraphs)))
            self._paragraphs = []

    def has_text(self) -> bool:
        return any(body for _, _, body in self.sections)

    # --- parser events ---------------------------------------------------------------------

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "title" and self.title is None and not self._inside("skip"):  # not an icon's <title> in an <svg>
            self._title = []
            return
        self._open_region(tag, attributes)
        if not self._reading():
            return
        if tag == "a":
            target = self._collector()
            self._links.append((target, len(target)))
        if self._pre is not None:
            if tag == "br":
                self._pre.append("\n")
        elif self._heading_text is not None:
            return
        elif _HEADING.fullmatch(tag):
            self._end_section()
            self._heading_text, self._heading_level = [], tag
        elif tag == "pre":
            self._end_paragraph()
            self._pre = []
        elif tag == "table":
            self._end_paragraph()
            self._in_cell = False
        elif tag == "tr":
            self._end_line()
            self._in_cell = False
        elif tag in ("td", "th"):
            if self._cells:
                self._line.append(" | ")
            self._cells += 1
            self._in_cell = True
        elif self._in_cell and (tag in _BLOCKS or tag in ("li", "br")):
            self._line.append(" ")
        elif tag == "li":
            self._end_paragraph()
            if not self._lists:  # an item outside any list
                self._lead = "- "
                return
            items = self._lists[-1]
            marker = "- " if items.number is None else f"{items.number}. "
            if items.number is not None:
                items.number += 1
            self._lead = " " * items.column + marker
            items.text_column = items.column + len(marker)
        elif tag == "br":
            self._end_line()
        elif tag == "code":
            self._line.append("`")
        elif tag in _BLOCKS:
            self._end_paragraph()
            if tag in ("ol", "ul"):
                start = attributes.get("start", "1").strip()
                numbered = start.isascii() and start.isdigit() and len(start) <= 9
                self._lists.append(_OpenList(None if tag == "ul" else int(start) if numbered else 1, self._indent()))
            if tag == "p" and "admonition-title" in attributes.get("class", "").split():
                self._admonition_title = []

    def handle_endtag(self, tag):
        if tag == "title" and self._title is not None:
            self.title = _words(self._title) or None
            self._title = None
            return
        reading = self._reading()
        self._close_region(tag)
        if not reading:
            return
        if tag == "a" and self._links:
            target, start = self._links.pop()
            if "".join(target[start:]).strip() in _PERMALINK_SIGNS:
                del target[start:]
        if self._pre is not None:
            if tag == "pre":
                self._end_code()
        elif self._heading_text is not None:
            if tag == self._heading_level:
                self._heading, self._level = _words(self._heading_text), int(tag[1])
                if self._heading:
                    self.first_heading = self.first_heading or self._heading
                    if tag == "h1":
                        self.first_h1 = self.first_h1 or self._heading
                self._heading_text = None
        elif tag == "code":
            self._line.append("`")
        elif tag in ("td", "th"):
            self._in_cell = False
        elif tag == "table":
            self._in_cell = False
            self._end_paragraph()
        elif tag == "tr":
            self._in_cell = False
            self._end_line()
        elif self._in_cell and (tag in _BLOCKS or tag == "li"):
            self._line.append(" ")
        elif tag == "p" and self._admonition_title is not None:
            phrase = _words(self._admonition_title)
            self._admonition_title = None
            self._line = []
            if phrase:  # after the item's marker where it is the item's first text
                self._lead = self._line_start() + leading_phrase(phrase) + " "
        elif tag in _BLOCKS or tag in ("li", "pre"):
            self._end_paragraph()
            if tag in ("ol", "ul") and self._lists:
                self._lists.pop()
            elif tag == "li" and self._lists:
                self._lists[-1].text_column = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def _collector(self) -> list[str]:
        """Where text read now goes: the code block, heading, admonition title or line being read."""
        for target in (self._pre, self._heading_text, self._admonition_title):
            if target is not None:
                return target
        return self._line

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)
        elif self._reading():
            self._collector().append(data)

    def _end_code(self) -> None:
        lines = "".join(self._pre or []).expandtabs(4).split("\n")
        self._pre = None
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            if self._lead:  # an item or admonition whose first text is this code: its marker or phrase comes first
                self._paragraphs.append(self._lead.rstrip())
                self._lead = ""
            indent = " " * (self._indent() + 4)
            self._paragraphs.append("\n".join(indent + line.rstrip() if line.strip() else "" for line in lines))

    def close(self):
        super().close()
        if self._pre is not None:  # a <pre> never closed runs to the end of the page
            self._end_code()
        if self._heading_text is not None:  # nor a heading
            self._heading, self._level = _words(self._heading_text), int(self._heading_level[1])
            self._heading_text = None
        self._end_section()


def _words(pieces: list[str]) -> str:
    """The text of ``pieces`` with its whitespace collapsed, as a browser shows it outside ``<pre>``."""
    return " ".join("".join(pieces).split())
