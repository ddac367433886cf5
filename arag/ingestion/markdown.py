"""Markdown read as the text a reader sees: titled sections, and their bodies without markup.

Documentation written in Markdown spends many of its tokens on what its reader never sees: link
targets (``[`Buffer`][]`` with a list of URLs at the end of the page, ``[text](https://...)``),
HTML comments that carry metadata, table rules, fences. Rendered, the same passages cost fewer
prompt tokens and encoder passes, and a source quoted back reads as the rendered page does.

What is kept: every sentence, with links as their words and images as their alt text; code,
indented by four spaces as :mod:`arag.ingestion.rst` writes it (fence lines cost tokens, and on
reST pages fenced code made the model copy whole blocks); table rows; admonitions (MkDocs
``!!! note``, GitHub ``> [!NOTE]``) and content tabs (``=== "pip"``) as a leading phrase;
emphasis, as written. What is dropped: HTML comments and tags, link reference definitions, YAML
front matter (its ``title`` names the page), thematic breaks, table rules, blockquote markers,
backslash escapes.

Sections start at ATX (``## Title``) and setext (underlined) headings; the first level-1
heading, or the front matter's title, is the document's title. A heading followed at once by a
deeper one heads the sections under it (:mod:`arag.ingestion.headings`).

Example:
    >>> title, sections = read_markdown('''# Buffer
    ... <!-- YAML
    ... added: v0.1.90
    ... -->
    ... A [`Buffer`][] is a subclass of [`Uint8Array`](https://mdn.io/u8) \\\\(see below\\\\):
    ... ```js
    ... Buffer.alloc(10);
    ... ```
    ...
    ... [`Buffer`]: #class-buffer''')
    >>> title, sections
    ('Buffer', [('Buffer', 'A `Buffer` is a subclass of `Uint8Array` (see below):\\n\\n    Buffer.alloc(10);')])
"""

from __future__ import annotations

import re

from arag.ingestion.headings import carry_headings
from arag.ingestion.rst import ADMONITION_PHRASES, leading_phrase, squeeze_blank_lines

#: Admonitions and quotes nested deeper than this are read as they stand (real pages nest two or three).
MAX_NESTING = 40

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_DEFINITION = re.compile(r"^ {0,3}\[([^\]^][^\]]*)\]:[ \t]*\S")  # not a footnote's "[^1]: text"
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?\s*$|^\s*\|\s*:?-+:?\s*\|\s*$")
_QUOTE = re.compile(r"^ {0,3}>[ ]?")
_ALERT = re.compile(r"^\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*(.*)$", re.IGNORECASE)
_ADMONITION = re.compile(r"^(?:!!!|\?\?\?\+?)[ \t]+([\w-]+)(?:[ \t]+\"(.*)\")?[ \t]*$")
_CONTENT_TAB = re.compile(r"^===[!+]?[ \t]+\"(.*)\"[ \t]*$")  # pymdownx.tabbed: === "pip"
_LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d{1,9}[.)])(?:[ \t]+|$)")
_HEADING_ID = re.compile(r"[ \t]*\{[#.][^}]*\}$")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])")
_INLINE_LINK = re.compile(r"\[([^\]]*)\]\(\s*(?:<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
                          r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[([^\]]*)\]")
_SHORTCUT_LINK = re.compile(r"\[([^\]]+)\](?![\[(:])")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_TAG_NAMES = ("a|abbr|b|big|br|center|cite|code|dd|del|details|dfn|div|dl|dt|em|figcaption|figure|font|h[1-6]|hr|i|"
              "img|ins|kbd|li|mark|ol|p|picture|pre|q|s|samp|small|source|span|strong|sub|summary|sup|table|tbody|"
              "td|tfoot|th|thead|tr|tt|u|ul|var|video")
_TAG = re.compile(rf"</?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
#: Admonitions: reST's, and the kinds MkDocs Material adds.
_PHRASES = {**ADMONITION_PHRASES, "info": "Info:", "example": "Example:", "abstract": "Summary:", "summary": "Summary:",
            "success": "Success:", "question": "Question:", "failure": "Failure:", "bug": "Bug:", "quote": "Quote:"}

Item = tuple[str, bool, int]  # a line, whether it is code, its heading level (0: not a heading)


def read_markdown(text: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The title and the ``(heading, body)`` sections of a Markdown page, bodies rendered."""
    lines = text.splitlines()
    title, lines = _front_matter(lines)
    lines = _without_comments(lines)
    labels = _definition_labels(lines)
    sections: list[tuple[int, str, str]] = []
    heading_level, heading, body = 0, "", []
    for line, code, level in _render(lines, labels):
        if level:
            sections.append((heading_level, heading, squeeze_blank_lines("\n".join(body))))
            heading_level, heading, body = level, line, []
            if title is None and level == 1:
                title = line
        else:
            body.append(line)
    sections.append((heading_level, heading, squeeze_blank_lines("\n".join(body))))
    return title, carry_headings(sections, title)


def render_inline(text: str, labels: frozenset[str] = frozenset()) -> str:
    """Text without inline markup: links as their words, images as their alt text, no tags or escapes.

    Code spans are kept as written (``\u0060\u0060x\u0060\u0060`` as `` `x` ``); ``[words]`` alone is a link only
    where the page defines that label.

    Example:
        >>> render_inline("See [the guide](https://x.org/a_(b)) and <b>[`fs`][]</b>, not [0, 1].")
        'See the guide and `fs`, not [0, 1].'
    """
    spans: list[str] = []

    def keep(match: re.Match) -> str:
        inner = match.group(2)
        spans.append(f"`{inner.strip()}`" if "`" not in inner else match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    text = _CODE_SPAN.sub(keep, text.replace("\x00", ""))
    text = _IMAGE.sub(r"\1", text)
    text = _INLINE_LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _SHORTCUT_LINK.sub(lambda m: m.group(1) if _label(m.group(1)) in labels else m.group(0), text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _ESCAPE.sub(r"\1", _TAG.sub("", text))
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def _render(lines: list[str], labels: frozenset[str], depth: int = 0) -> list[Item]:
    """The page as rendered lines: headings marked with their level, code indented by four spaces."""
    if depth > MAX_NESTING:  # a hostile file's thousand nested admonitions: the rest is read as it stands
        return [(line.rstrip(), False, 0) for line in lines]
    out: list[Item] = []
    paragraph: list[str] = []
    in_list = False

    def flush() -> None:
        if paragraph:
            # A line of tags only (<p align="center">) leaves nothing; outside a list, a paragraph's
            # indentation means nothing (HTML indents its text) and would read as code.
            lines = [line for line in render_inline("\n".join(paragraph), labels).splitlines() if line.strip()]
            out.extend((line if in_list else line.lstrip(), False, 0) for line in lines)
            paragraph.clear()

    def blank() -> None:
        flush()
        if out and out[-1][0]:
            out.append(("", False, 0))

    def code(block: list[str]) -> None:  # a paragraph of its own, indented by four spaces
        blank()
        out.extend(("    " + line if line.strip() else "", True, 0) for line in block)
        blank()

    i = 0
    while i < len(lines):
        line = lines[i].expandtabs(4).rstrip()
        stripped = line.strip()
        fence = _opens_fence(line)
        if fence:
            block, i = _fenced(lines, i, fence)
            code(block)
            continue
        if not stripped:
            blank()
            i += 1
            continue
        if _DEFINITION.match(line):
            i += 1
            continue
        heading = _ATX.match(line)
        if heading:
            blank()
            out.append((_heading_text(heading.group(2), labels), False, len(heading.group(1))))
            in_list = False
            i += 1
            continue
        if paragraph and _SETEXT.match(line) and not in_list:
            text = _heading_text(" ".join(p.strip() for p in paragraph), labels)
            paragraph.clear()
            blank()
            out.append((text, False, 1 if stripped[0] == "=" else 2))
            i += 1
            continue
        if _BREAK.match(line) or _TABLE_RULE.match(line):
            i += 1
            continue
        if _QUOTE.match(line):
            block, i = _quoted(lines, i)
            blank()
            alert = _ALERT.match(block[0].strip()) if block else None
            if alert:  # "> [!NOTE]" alone on its line: the phrase leads the next line, as an admonition's does
                lead = f"{_PHRASES[alert.group(1).lower()]} {alert.group(2)}".rstrip()
                block = [f"{lead} {block[1].strip()}", *block[2:]] if len(block) > 1 and not alert.group(2) else [lead, *block[1:]]
            out.extend(_render(block, labels, depth + 1))
            blank()
            continue
        admonition, tab = _ADMONITION.match(stripped), _CONTENT_TAB.match(stripped)
        if admonition or tab:
            body, i = _indented(lines, i + 1, 4)
            blank()
            if admonition:
                kind, caption = admonition.group(1).lower(), admonition.group(2)
                lead = " ".join(p for p in (_PHRASES.get(kind, kind.capitalize() + ":"), leading_phrase(caption)) if p)
            else:  # a tab's label leads its content, as an admonition's phrase does
                lead = leading_phrase(tab.group(1))
            inner = _render(body, labels, depth + 1)
            if not lead:  # a tab without a label
                out.extend(inner)
            elif inner and not inner[0][1] and not inner[0][2]:
                out.append((f"{lead} {inner[0][0]}", False, 0))
                out.extend(inner[1:])
            else:
                out.extend([(lead, False, 0), *inner])
            blank()
            continue
        indent = len(line) - len(line.lstrip())
        if indent >= 4 and not paragraph and not in_list:
            block, i = _indented(lines, i, 4)
            code(block)
            continue
        if _LIST_ITEM.match(line):
            in_list = True
        elif indent == 0 and not paragraph:
            in_list = False
        paragraph.append(line)
        i += 1
    flush()
    return out


def _opens_fence(line: str) -> re.Match | None:
    """A fence's opening line (a backtick fence's info string holds no backtick), or None."""
    fence = _FENCE.match(line)
    return fence if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)) else None


def _closes(marker: str, line: str) -> bool:
    """Whether ``line`` closes a fence opened with ``marker``: the same character, at least as many."""
    stripped = line.strip()
    return len(stripped) >= len(marker) and stripped == marker[0] * len(stripped)


def _in_code(lines: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced block (its fences included)."""
    flags, marker = [], None
    for line in lines:
        if marker is None and (fence := _opens_fence(line)):
            marker = fence.group(2)
            flags.append(True)
        else:
            flags.append(marker is not None)
            if marker is not None and _closes(marker, line):
                marker = None
    return flags


def _fenced(lines: list[str], start: int, fence: re.Match) -> tuple[list[str], int]:
    """A fenced block's lines, less the fence's indentation, and the index after its closing fence."""
    indent, marker = len(fence.group(1).expandtabs(4)), fence.group(2)
    block: list[str] = []
    i = start + 1
    while i < len(lines) and not _closes(marker, lines[i]):
        line = lines[i].expandtabs(4).rstrip()
        block.append(line[min(indent, len(line) - len(line.lstrip())):])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    while block and not block[0].strip():
        block.pop(0)
    return block, i + 1


def _without_comments(lines: list[str]) -> list[str]:
    """The lines with HTML comments removed outside fenced code; a comment never closed runs to the end."""
    out: list[str] = []
    code = _in_code(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        if code[i] or "<!--" not in line:
            out.append(line)
            i += 1
            continue
        joined = [line]
        closed = "-->" in line[line.index("<!--") + 4:]
        while not closed and i + 1 < len(lines):  # only each new line is searched: one pass, however long
            i += 1
            joined.append(lines[i])
            closed = "-->" in lines[i]
        rest = _COMMENT.sub("", "\n".join(joined))
        rest = rest[:rest.index("<!--")] if "<!--" in rest else rest
        out.extend(line for line in rest.splitlines() if line.strip())
        i += 1
    return out


def _quoted(lines: list[str], start: int) -> tuple[list[str], int]:
    """A blockquote's lines without their ``>`` markers (lazy continuation lines included)."""
    block: list[str] = []
    i = start
    while i < len(lines) and lines[i].strip():
        block.append(_QUOTE.sub("", lines[i], count=1))
        i += 1
    return block, i


def _indented(lines: list[str], start: int, by: int) -> tuple[list[str], int]:
    """The lines from ``start`` indented by at least ``by`` (blank lines within included), dedented by ``by``."""
    block: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i].expandtabs(4).rstrip()
        if line.strip() and len(line) - len(line.lstrip()) < by:
            break
        block.append(line[by:])
        i += 1
    while block and not block[-1].strip():
        block.pop()
        i -= 1
    return block, i


def _definition_labels(lines: list[str]) -> frozenset[str]:
    """The labels of the page's link reference definitions (``[label]: url``), outside code."""
    return frozenset(_label(m.group(1)) for line, code in zip(lines, _in_code(lines))
                     if not code and (m := _DEFINITION.match(line)))


def _front_matter(lines: list[str]) -> tuple[str | None, list[str]]:
    """YAML front matter (``---`` ... ``---`` first on the page) removed; its ``title``, if any."""
    if not lines or lines[0].strip() != "---":
        return None, lines
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            found = [re.match(r"title:\s*(.+)$", line) for line in lines[1:end]]
            titles = [m.group(1).strip().strip("\"'") for m in found if m]
            return (titles[0] if titles else None), lines[end + 1:]
    return None, lines


def _heading_text(text: str, labels: frozenset[str]) -> str:
    return render_inline(_HEADING_ID.sub("", text), labels).strip()


def _label(text: str) -> str:
    return " ".join(text.lower().split())


