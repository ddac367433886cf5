"""Parsing every supported format, and a clear error for every kind of bad file."""

from __future__ import annotations

import re

import pytest
from documents import (
    HTML,
    MARKDOWN,
    encrypted_pdf_bytes,
    outlined_pdf,
    pdf_bytes,
    slide_deck,
    word_document,
    word_list_item,
    word_paragraphs_read,
    write_corpus,
)

from arag.ingestion.chunking import chunk_sections, split_section
from arag.ingestion.loaders import IngestError, Section, load_file, parse_rst


def test_markdown_sections_and_title(tmp_path):
    path = tmp_path / "l.md"
    path.write_text(MARKDOWN)
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "Lighthouses"
    assert [s.heading for s in doc.sections] == ["Lighthouses", "Fresnel lens", "Keepers"]
    assert "1822" in doc.sections[1].text


def test_markdown_heading_inside_code_fence_is_text(tmp_path):
    path = tmp_path / "c.md"
    path.write_text("# Title\n\nIntro.\n\n```\n# not a heading\n```\n")
    [doc] = load_file(path, path.read_bytes())
    assert [s.heading for s in doc.sections] == ["Title"]
    assert "# not a heading" in doc.sections[0].text


MARKDOWN_PAGE = """---
title: Harbour guide
tags: [sea]
---
Harbour guide <!-- YAML
added: v1.2
-->
=============

![The harbour at dawn](img/dawn.png "dawn") Boats moor at the [`quay`][] and the [old pier](https://x.org/pier_(old) "Pier").
See [tides] or <https://tides.example> for times; arrays like [0, 1] stay. A star: \\*not emphasis\\*.
<a id="berths"></a>Berths cost <b>12</b> a night.

| Berth | Price |
| :---- | ----: |
| A | 12 |

---

Mooring
-------

> [!WARNING]
> Keep clear of the ferry lane.

!!! tip "Good to know"
    The office opens at 8.

=== "Summer"

    Moor by 22:00.

===+ "Winter"
    ```sh
    moor --early
    ```

Run:
```sh
# not a heading <!-- kept in code -->
moor --berth A
```

    indented code

* a list item

    continued item text, not code

[`quay`]: #quay
[tides]: https://tides.example/table "Tides"
[^1]: A footnote's text is kept.
"""


def test_markdown_is_read_as_rendered(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN_PAGE)
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "Harbour guide"
    assert [s.heading for s in doc.sections] == ["Harbour guide", "Mooring"]
    intro, mooring = (s.text for s in doc.sections)
    assert intro == (
        "The harbour at dawn Boats moor at the `quay` and the old pier.\n"
        "See tides or https://tides.example for times; arrays like [0, 1] stay. A star: *not emphasis*.\n"
        "Berths cost 12 a night.\n\n"
        "| Berth | Price |\n| A | 12 |"
    )
    assert mooring == (
        "Warning: Keep clear of the ferry lane.\n\n"
        "Tip: Good to know: The office opens at 8.\n\n"
        "Summer: Moor by 22:00.\n\n"
        "Winter:\n    moor --early\n\n"
        "Run:\n\n"
        "    # not a heading <!-- kept in code -->\n    moor --berth A\n\n"
        "    indented code\n\n"
        "* a list item\n\n"
        "    continued item text, not code\n\n"
        "[^1]: A footnote's text is kept."
    )


def test_markdown_code_stays_with_its_announcement_and_markup_costs_no_tokens():
    from arag.ingestion.chunking import paragraph_groups
    from arag.ingestion.markdown import read_markdown

    _, [(_, body)] = read_markdown("Install it:\n```bash\npip install arag\n```\nThen ask.\n")
    assert paragraph_groups(body) == [["Install it:", "    pip install arag"], ["Then ask."]]


def test_markdown_html_block_text_is_prose_not_code():
    """Text indented inside an HTML block (a README's centred tagline) is prose once its tags are gone."""
    from arag.ingestion.chunking import paragraph_groups
    from arag.ingestion.markdown import read_markdown

    page = '<p align="center">\n    <em>Fast to learn, ready for production</em>\n</p>\n\n* item\n  * nested item\n'
    _, [(_, body)] = read_markdown(page)
    assert body == "Fast to learn, ready for production\n\n* item\n  * nested item"
    assert paragraph_groups(body)[0] == ["Fast to learn, ready for production"]


@pytest.mark.parametrize(("page", "kept", "dropped"), [
    ("# T\n\ntext <!-- never closed\n\n## Lost\n\nmore", "text", "more"),
    ("# T\n\ntext\n\n```\nunclosed fence\n## still code", "    ## still code", "```"),
    ("# T\n\n" + "".join(f"{'    ' * d}!!! note\n" for d in range(60)) + "    " * 60 + "deep words\n", "deep words", " " * 240 + "deep"),
    ("# T\n\n" + "> " * 3000 + "deep quote\n", "deep quote", "> " * 2999),
])
def test_hostile_markdown_is_read_without_error(tmp_path, page, kept, dropped):
    """Never-closed comments and fences end with the page; nesting past MAX_NESTING is read as it stands."""
    path = tmp_path / "h.md"
    path.write_text(page)
    [doc] = load_file(path, path.read_bytes())
    text = "\n".join(s.text for s in doc.sections)
    assert (doc.title, [s.heading for s in doc.sections]) == ("T", ["T"])
    assert kept in text and dropped not in text


def test_html_drops_scripts_and_styles(tmp_path):
    path = tmp_path / "b.html"
    path.write_text(HTML)
    [doc] = load_file(path, path.read_bytes())
    text = " ".join(s.text for s in doc.sections)
    assert doc.title == "Honey bees"
    assert "waggle dance" in text and "ignored" not in text and "color" not in text
    assert "Waggle dance" in [s.heading for s in doc.sections]


SPHINX_HTML_PAGE = """<!DOCTYPE html><html><head><title>os.path — Common pathname manipulations — Docs 3.11</title>
<script>var x = 1;</script></head><body>
<div class="related" role="navigation"><ul><li><a href="index.html">index</a></li><li>modules |</li></ul></div>
<div class="document"><div class="body" role="main">
<section id="os-path"><h1>os.path — Common pathname manipulations<a class="headerlink" href="#os-path">¶</a></h1>
<p>Use <code class="xref"><span class="pre">join()</span></code> to build paths:</p>
<div class="highlight"><pre><span></span><span class="gp">&gt;&gt;&gt; </span>join(&quot;a&quot;,
<span class="gp">... </span>     &quot;b&quot;)
'a/b'
</pre></div>
<div class="admonition note"><p class="admonition-title">Note</p><p>All of these functions accept bytes.</p></div>
<div class="toctree-wrapper compound"><ul><li><a href="a.html">Another page</a></li></ul></div>
<table><thead><tr><th><p>Function</p></th><th><p>Returns</p></th></tr></thead>
<tbody><tr><td><p><code>basename()</code></p></td><td><p>the final component</p></td></tr></tbody></table>
<dl class="py function"><dt class="sig" id="os.path.exists"><span class="pre">os.path.exists</span>(<em>path</em>)
<a class="headerlink" href="#x">¶</a></dt>
<dd><p>Return <code>True</code> if path exists.</p><ul><li><p>first case</p></li><li>second case</li></ul></dd></dl>
</section></div></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul><li>os.path</li></ul></div>
<div class="footer">© Copyright 2001-2026. Created using Sphinx.</div></body></html>"""


def test_html_reads_a_pages_own_content_as_a_reader_sees_it(tmp_path):
    """A documentation page: its main region only (no navigation, sidebar or footer), no permalink signs or
    table-of-contents lists, code keeping its lines, an admonition's title leading its text, a table row a line.
    """
    path = tmp_path / "os.path.html"
    path.write_text(SPHINX_HTML_PAGE)
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "os.path — Common pathname manipulations"
    [(heading, text)] = [(s.heading, s.text) for s in doc.sections]
    assert heading == doc.title
    assert text == (
        "Use `join()` to build paths:\n\n"
        "    >>> join(\"a\",\n    ...      \"b\")\n    'a/b'\n\n"
        "Note: All of these functions accept bytes.\n\n"
        "Function | Returns\n`basename()` | the final component\n\n"
        "os.path.exists(path)\n\n"
        "Return `True` if path exists.\n\n"
        "- first case\n\n- second case")


def test_html_without_a_main_region_drops_the_site_around_it(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Tides</title></head><body><header role='banner'>Ocean Site</header>"
                    "<nav>Home About</nav><aside>Related: Waves</aside><div hidden>menu</div>"
                    "<h2>Tides<a class='mark' href='#tides'>#</a></h2><p>The moon pulls the sea.</p>"
                    "<h2>C#</h2><p>A language.</p><span aria-hidden='true'>icon</span>"
                    "<ol start='3'><li>Install it.<li>Run it.<ul><li>twice</ul></ol><ol start='²'><li>Stop.</ol>"
                    "<footer>Contact us</footer></body></html>")
    [doc] = load_file(path, path.read_bytes())
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Tides", "The moon pulls the sea."), ("C#", "A language.\n\n3. Install it.\n\n4. Run it.\n\n   - twice\n\n1. Stop.")]
    assert doc.title == "Tides"


def test_html_list_nested_in_an_item_is_indented_under_its_text(tmp_path):
    """What an item holds after its first line (paragraphs, code, a nested list, an admonition, a line
    break) is laid out under the item's text, as Markdown nests it; the page's next list starts at the margin.
    """
    path = tmp_path / "mooring.html"
    path.write_text("<html><body><main><h1>Mooring</h1><ul><li><p>Bow line</p><p>Made fast first.</p>"
                    "<ol start='2'><li>Take a turn.<br>Then a hitch.</li><li><pre>cleat(bow)\n  .hitch()</pre></li>"
                    "<li><div class='admonition warning'><p class='admonition-title'>Warning</p><p>Mind your fingers.</p>"
                    "</div></li></ol>Then the stern.</li><li>Stern line</li></ul><ul><li>Spring</li><ul><li>Fore</li></ul></ul>"
                    "</main></body></html>")
    [doc] = load_file(path, path.read_bytes())
    assert doc.sections[0].text.split("\n\n") == [
        "- Bow line", "  Made fast first.", "  2. Take a turn.\n     Then a hitch.", "  3.",
        "         cleat(bow)\n           .hitch()", "  4. Warning: Mind your fingers.", "  Then the stern.",
        "- Stern line", "- Spring", "  - Fore"]


def test_html_page_inside_a_region_left_open_is_not_lost(tmp_path):
    """Navigation never closed would swallow the page: it is read again with less left out."""
    path = tmp_path / "open.html"
    path.write_text("<html><body><nav><ul><li>Home</ul><h1>Glaciers</h1><p>Ice flows downhill.</p></body></html>")
    [doc] = load_file(path, path.read_bytes())
    assert "Ice flows downhill." in doc.sections[-1].text and doc.title == "Glaciers"


def test_html_paragraph_left_out_and_left_open_ends_where_a_browser_ends_it(tmp_path):
    """A ``<p>`` ends at the next block, closed or not: a hidden one left open hides nothing after it."""
    path = tmp_path / "loose.html"
    path.write_text("<main><h1>Rivers</h1><p hidden>Old menu<div>Rivers run to the sea.</div>"
                    "<p aria-hidden=true>icon<p>Deltas form at their mouths.</p></main>")
    [doc] = load_file(path, path.read_bytes())
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Rivers", "Rivers run to the sea.\n\nDeltas form at their mouths.")]


def test_html_main_region_of_only_a_table_of_contents_or_an_index_is_its_title(tmp_path):
    path = tmp_path / "index.html"
    path.write_text("<html><head><title>Library — Docs</title></head><body><div class='footer'>© Docs</div>"
                    "<main><h1>Library</h1><div class='toctree-wrapper'><ul><li>os</li></ul></div>"
                    "<table class='indextable'><tr><td><a href='os.html#os.walk'>walk() (in module os)</a></td></tr></table>"
                    "</main></body></html>")
    [doc] = load_file(path, path.read_bytes())
    assert (doc.title, [(s.heading, s.text) for s in doc.sections]) == ("Library", [("Library", "Library")])


def test_deeply_nested_html_is_parsed(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text("<div>" * 5000 + "deep words" + "</div>" * 5000)
    [doc] = load_file(path, path.read_bytes())
    assert "deep words" in doc.sections[0].text


def test_rst_sections(tmp_path):
    path = tmp_path / "r.rst"
    path.write_text(".. _label:\n\n*****\nTitle\n*****\n\nIntro text.\n\nPart one\n========\n\nBody one.\n")
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "Title"
    assert [(s.heading, s.text.strip()) for s in doc.sections] == [("Title", "Intro text."), ("Part one", "Body one.")]


def test_sphinx_source_copies_keep_their_markup(tmp_path):
    """Sphinx publishes page sources as page.rst.txt / page.md.txt: read as reST and Markdown."""
    rst = tmp_path / "getting_started.rst.txt"
    rst.write_text("*****\nTitle\n*****\n\nIntro text.\n\nPart one\n========\n\nBody one.\n")
    [doc] = load_file(rst, rst.read_bytes())
    assert (doc.kind, doc.title) == ("rst", "Title")
    assert [s.heading for s in doc.sections] == ["Title", "Part one"]
    md = tmp_path / "l.md.txt"
    md.write_text(MARKDOWN)
    [doc] = load_file(md, md.read_bytes())
    assert (doc.kind, doc.title) == ("markdown", "Lighthouses")


@pytest.mark.parametrize("name, kind, title", [
    ("release_notes.txt", "text", "release notes"),
    ("v1.2.txt", "text", "v1.2"),
    ("archive.tar.txt", "text", "archive.tar"),
    ("untitled_page.rst.txt", "rst", "untitled page"),
    ("README.MD.TXT", "markdown", "README"),
])
def test_text_files_are_read_by_their_suffixes(tmp_path, name, kind, title):
    path = tmp_path / name
    path.write_text("Plain words without a heading.\n")
    [doc] = load_file(path, path.read_bytes())
    assert (doc.kind, doc.title) == (kind, title)


def test_word_document_sections_lists_tables_and_title(tmp_path):
    path = tmp_path / "guide.docx"
    word_document(path)
    [doc] = load_file(path, path.read_bytes())
    assert (doc.title, doc.kind) == ("Harbour handbook", "docx")
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Tides", "High water comes twice a day.\nCheck the table: tide table\n\nMoorings cost 7 pounds a night.\n\n"
                  "Footnote: Winter rates are half."),
        ("Steps", "1. Call the harbour master.\n\n2. Wait for a berth.\n\n- Bring fenders.\n\n"
                  "Berth | Depth\nA | 4 m at low water"),
    ]


def test_slide_deck_one_section_a_slide_without_its_frame(tmp_path):
    path = tmp_path / "guide.pptx"
    slide_deck(path)
    [doc] = load_file(path, path.read_bytes())
    assert (doc.title, doc.kind) == ("Harbour handbook", "pptx")
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Slide 1: Harbour guide", "Visiting boats, 2026"),
        ("Slide 2: Tides", "- High water comes twice a day.\n  - Spring tides follow\n    the full moon.\n"
                           "Tables at the office.\n\nNotes: Point at the tide table."),
        ("Slide 3: Prices", "Boat | Night\n12 m | 380 kroner\nElectricity included\n\n- Pay in cash\n  at the kiosk.\n\n"
                            "Showers are free."),
        ("Slide 5: Winter", "Winter"),  # slide 4 has no text; slide 5 has only its title
        ("Slide 6: Winter rates", "Half price from November."),  # hidden, and read
    ]


@pytest.mark.parametrize(("suffix", "data", "reason"), [
    (".docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "encrypted or old-format (.doc) Word file"),
    (".docx", b"PK\x03\x04 not really a zip", "not a Word document (not a zip archive"),
    (".docx", "zip", "not a Word document (no word/document.xml)"),
    (".docx", "<w:document><w:body><w:p>", "corrupt Word document (word/document.xml: "),
    (".docx", '<!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>', "declares a DOCTYPE or entities"),
    (".pptx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "encrypted or old-format (.ppt) PowerPoint file"),
    (".pptx", b"PK\x03\x04 not really a zip", "not a PowerPoint presentation (not a zip archive"),
    (".pptx", "zip", "not a PowerPoint presentation (no ppt/presentation.xml)"),
    (".pptx", "<p:presentation><p:sldIdLst>", "corrupt PowerPoint presentation (ppt/presentation.xml: "),
    (".pptx", '<!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>', "declares a DOCTYPE or entities"),
])
def test_bad_office_documents_are_refused_with_the_reason(tmp_path, suffix, data, reason):
    import io
    import zipfile

    if isinstance(data, str):
        main = {".docx": "word/document.xml", ".pptx": "ppt/presentation.xml"}[suffix]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as out:
            out.writestr(main if data != "zip" else "other.xml", data)
        data = archive.getvalue()
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    with pytest.raises(IngestError, match=re.escape(reason)):
        load_file(path, data)


def test_a_word_document_with_only_a_title_and_headings_names_its_title(tmp_path):
    """With no title set in its properties, the document's Title paragraph names it."""
    import docx
    document = docx.Document()
    document.add_heading("Lock keeping", 0)
    document.add_heading("Gates", 1)
    document.add_paragraph("Open the upper gate last.")
    path = tmp_path / "locks.docx"
    document.save(path)
    [doc] = load_file(path, path.read_bytes())
    assert (doc.title, [(s.heading, s.text) for s in doc.sections]) == ("Lock keeping", [("Gates", "Open the upper gate last.")])


def test_word_lists_of_one_definition_count_on_until_one_restarts_as_word_numbers_them(tmp_path):
    """Word numbers the lists (w:num) of one definition as one list, broken by a paragraph or not; a
    list that overrides its start ("Restart numbering") counts from there.
    """
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    numbering = document.part.numbering_part.element
    style_list = document.styles["List Number"].element.pPr.numPr.numId.val
    definition = numbering.num_having_numId(style_list).abstractNumId.val
    restart = '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride>'
    for list_id, override in ((98, ""), (99, restart)):
        numbering.append(parse_xml(f'<w:num {nsdecls("w")} w:numId="{list_id}"><w:abstractNumId w:val="{definition}"/>'
                                   f'{override}</w:num>'))

    def item(text, list_id=None):
        word_list_item(document, text, list_id, style="List Number")

    item("Call the harbour master.")
    item("Wait for a berth.")
    document.add_paragraph("Keep clear of the fairway meanwhile.")
    item("Moor bow first.")
    item("Make fast fore and aft.", 98)  # another list of the same definition, not restarted
    item("Pay at the office.", 99)
    item("Keep the receipt.", 99)
    assert word_paragraphs_read(document, tmp_path / "steps.docx") == [
        "1. Call the harbour master.", "2. Wait for a berth.", "Keep clear of the fairway meanwhile.", "3. Moor bow first.",
        "4. Make fast fore and aft.", "1. Pay at the office.", "2. Keep the receipt.",
    ]


def test_word_list_of_a_list_style_is_numbered_by_the_styles_levels(tmp_path):
    """Word's "Define New List Style" writes a definition that only links to the style (w:numStyleLink);
    the style's own definition (w:styleLink) holds the levels, and its lists count on together.
    """
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    document = docx.Document()
    numbering = document.part.numbering_part.element
    levels = ('<w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="upperLetter"/><w:lvlText w:val="Step %1:"/></w:lvl>'
              '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>')
    for definition, link in ((90, f'<w:styleLink w:val="Steps"/>{levels}'), (91, '<w:numStyleLink w:val="Steps"/>'),
                             (92, '<w:numStyleLink w:val="Steps"/>')):
        numbering.append(parse_xml(f'<w:abstractNum {nsdecls("w")} w:abstractNumId="{definition}">{link}</w:abstractNum>'))
    for list_id, definition in ((81, 91), (82, 92)):
        numbering.append(parse_xml(f'<w:num {nsdecls("w")} w:numId="{list_id}"><w:abstractNumId w:val="{definition}"/></w:num>'))

    word_list_item(document, "Check the tide table.", 81)
    word_list_item(document, "Note high water.", 81, level=1)
    word_list_item(document, "Cast off.", 82)
    assert word_paragraphs_read(document, tmp_path / "steps.docx") == [
        "Step A: Check the tide table.", "  A.1 Note high water.", "Step B: Cast off."]


def test_word_list_levels_are_indented_and_a_broken_line_goes_on_under_the_items_text(tmp_path):
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    bullets = document.styles["List Bullet"].element.pPr.numPr.numId.val

    def item(text, level, then=None):
        paragraph = word_list_item(document, text, bullets, level, style="List Bullet")
        if then:
            paragraph.add_run().add_break(WD_BREAK.LINE)
            paragraph.add_run(then)

    item("Lines", 0)
    item("Bow line", 1, then="made fast first")
    item("Spring", 2)
    item("Fenders", 0)
    assert word_paragraphs_read(document, tmp_path / "mooring.docx") == [
        "- Lines", "  - Bow line\n    made fast first", "    - Spring", "- Fenders"]


def test_pdf_text_and_title(tmp_path):
    path = tmp_path / "v.pdf"
    path.write_bytes(pdf_bytes(["Mount Etna is in Sicily."], title="Volcanoes"))
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "Volcanoes"
    assert "Etna" in doc.sections[0].text and doc.sections[0].heading == "page 1"


def test_pdf_pages_lose_their_running_header_page_numbers_and_contents_and_follow_the_outline(tmp_path):
    contents = ["Harbour Manual", "Contents"] + [f"{n} Part {n} . . . . . . . . {n}" for n in range(1, 7)] + ["ii"]
    pages = [
        ["Harbour Manual", "Welcome to the harbour of Tromvik and its rules.", "1"],
        ["Harbour Manual", "2 Berths", "Visiting boats moor at the north pier, where the", "harbour master gives each a berth on ar-",
         "rival.", "3 Fees", "A night costs 240 kroner.", "2"],
        ["Harbour Manual", "Fuel is sold at the east quay from May to Septem-", "ber, and paid for at the office.", "3"],
    ]
    # The line reads "2 Berths": the section's number is not in the outline.
    path = outlined_pdf(tmp_path / "manual.pdf", pdf_bytes(contents, more_pages=pages), [("Berths", 2, 1), ("3 Fees", 2, 1)])
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "Harbour Manual"  # no title of its own: its running title
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("page 2", "Welcome to the harbour of Tromvik and its rules."),
        ("Berths (page 3)", "Visiting boats moor at the north pier, where the\nharbour master gives each a berth on arrival."),
        ("3 Fees (page 3)", "A night costs 240 kroner."),
        ("3 Fees (page 4)", "Fuel is sold at the east quay from May to September, and paid for at the office."),
    ]


#: A guide whose chapter heading is followed at once by its first section's, with an empty closing
#: section before the next chapter: (level, heading, text), the guide's title at level 1.
GUIDE = [(1, "Harbour Guide", ""), (2, "Part 2: Moorings", ""), (3, "Tides", "High water comes twice a day."),
         (3, "Notes", ""), (2, "Fees", "A night costs 240 kroner.")]


def _guide_file(folder, suffix: str):
    """GUIDE written as a Markdown, reST, HTML, Word or PDF file (a PDF's outline nesting as the levels)."""
    path = folder / f"guide{suffix}"
    if suffix == ".md":
        path.write_text("".join(f"{'#' * level} {heading}\n\n{text}\n\n" for level, heading, text in GUIDE))
    elif suffix == ".rst":
        path.write_text("".join(f"{heading}\n{'=-~'[level - 1] * len(heading)}\n\n{text}\n\n" for level, heading, text in GUIDE))
    elif suffix == ".html":
        path.write_text("<body>" + "".join(f"<h{level}>{heading}</h{level}><p>{text}</p>" for level, heading, text in GUIDE))
    elif suffix == ".docx":
        from docx import Document

        document = Document()
        for level, heading, text in GUIDE:
            document.add_heading(heading, level)
            if text:
                document.add_paragraph(text)
        document.save(path)
    else:
        lines = [line for _, heading, text in GUIDE for line in (heading, text) if line]
        outlined_pdf(path, pdf_bytes(lines, title="Harbour Guide"), [(heading, 0, level) for level, heading, _ in GUIDE])
    return path


@pytest.mark.parametrize("suffix", [".md", ".rst", ".html", ".docx", ".pdf"])
def test_a_heading_followed_at_once_by_a_deeper_one_heads_the_sections_under_it(tmp_path, suffix):
    path = _guide_file(tmp_path, suffix)
    [doc] = load_file(path, path.read_bytes())
    page = " (page 1)" if suffix == ".pdf" else ""
    assert doc.title == "Harbour Guide"
    # "Part 2: Moorings" heads no text: its words lead its section's heading, where a search finds them.
    # "Notes" heads nothing under it, and the title is in every chunk already: neither is carried.
    assert [(s.heading, s.text) for s in doc.sections] == [
        (f"Part 2: Moorings › Tides{page}", "High water comes twice a day."),
        (f"Fees{page}", "A night costs 240 kroner."),
    ]


def test_jsonl_records_become_documents(tmp_path):
    paths = write_corpus(tmp_path)
    docs = load_file(paths["jsonl"], paths["jsonl"].read_bytes())
    assert [d.title for d in docs] == ["Ada Lovelace", "Grace Hopper"]
    assert docs[0].source.endswith("people.jsonl#ada")


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.md", b"   \n", "empty file"),
        ("bin.txt", b"abc\x00\x01\x02" * 10, "binary content"),
        ("latin.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4\n garbage that is not a pdf", "corrupt or unreadable PDF"),
        ("fake.pdf", b"hello, I am text", "not a PDF"),
        ("bad.jsonl", b'{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', "line 2: invalid JSON"),
        ("notext.jsonl", b'{"id": 1, "body": "x"}\n', "line 1: expected an object with a string 'text'"),
        ("dup.jsonl", b'{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "line 2: duplicate id"),
        ("image.png", b"\x89PNG....", "unsupported file type .png"),
    ],
)
def test_bad_files_raise_one_clear_line(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IngestError) as info:
        load_file(path, data)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_encrypted_pdf_is_refused(tmp_path):
    path = tmp_path / "secret.pdf"
    path.write_bytes(encrypted_pdf_bytes())
    with pytest.raises(IngestError, match="encrypted PDF"):
        load_file(path, path.read_bytes())


def words(text: str) -> int:
    return len(text.split())


def test_chunks_respect_budget_and_sections():
    sections = [
        Section("A", "one two three\n\nfour five six seven\n\neight"),
        Section("B", "nine ten"),
    ]
    chunks = chunk_sections(sections, words, 7)
    assert [(c.heading, c.text) for c in chunks] == [
        ("A", "one two three\n\nfour five six seven"),
        ("A", "eight"),
        ("B", "nine ten"),
    ]
    assert all(c.tokens <= 7 for c in chunks)


def test_long_paragraph_splits_at_sentences_then_words():
    paragraph = "Short one. " + " ".join(f"w{i}" for i in range(30)) + ". End here."
    chunks = split_section(Section("", paragraph), words, 10)
    assert all(words(c.text) <= 10 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == paragraph.split()
    assert chunks[0].text.startswith("Short one.")


def test_paragraphs_pack_to_the_budget_but_one_stays_whole_up_to_the_larger_size():
    short = ["s1 s2 s3", "t1 t2 t3", "u1 u2 u3"]
    middle = " ".join(f"m{i}" for i in range(9))  # over the budget of 5, under whole's 10: never cut
    long = ". ".join(" ".join(f"l{j}x{i}" for i in range(4)) for j in range(6)) + "."  # 24 words: cut at sentences
    chunks = split_section(Section("", "\n\n".join([*short, middle, long])), words, 5, whole=10)
    texts = [c.text for c in chunks]
    # Separate paragraphs share a chunk only within the budget; the middle paragraph is one chunk of its own.
    assert texts[:4] == ["s1 s2 s3", "t1 t2 t3", "u1 u2 u3", middle]
    # The long one is cut between sentences into pieces that fill up to whole, not up to the budget.
    rest = chunks[4:]
    assert " ".join(c.text for c in rest).split() == long.split()
    assert all(c.tokens <= 10 for c in rest) and max(c.tokens for c in rest) > 5
    assert all(c.text.endswith(".") for c in rest)
    # Without a larger size, the budget is both (the chunking before paragraphs were kept whole).
    assert all(c.tokens <= 5 for c in split_section(Section("", middle + "\n\n" + long), words, 5))


def test_real_tokenizer_budget(embedder):
    text = " ".join(["Supercalifragilisticexpialidocious antidisestablishmentarianism"] * 200)
    chunks = split_section(Section("", text), embedder.count_tokens, 64)
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.text) <= 64 for c in chunks)


SPHINX_PAGE = """\
.. _os-path:

:mod:`os.path` --- Pathnames
============================

.. module:: os.path
   :synopsis: Operations on pathnames.

.. index:: single: path; operations
   pair: module; posixpath

.. This comment is for the page's editors.

See :func:`~os.path.join` and the `Python
Package Index <https://pypi.org>`_, or ``python
-m pip``; :pep:`8` says how.  Read :ref:`tut-venv`.

.. note::

   All of these functions accept bytes.

.. function:: join(path, *paths)
   :noindex:

   Join one or more path segments.  For example::

      >>> join('a', 'b')
      'a/b'

   .. versionchanged:: 3.6
      Accepts a path-like object.

.. code-block:: bash

   python3 -m venv env

.. toctree::
   :maxdepth: 2

   first
"""


def test_rst_markup_is_rendered_to_what_a_reader_sees(tmp_path):
    path = tmp_path / "os.path.rst"
    path.write_text(SPHINX_PAGE)
    [doc] = load_file(path, path.read_bytes())
    assert doc.title == "`os.path` --- Pathnames"
    [section] = doc.sections
    assert section.text == (
        "os.path\n"
        "Operations on pathnames.\n"
        "\n"
        "See `join` and the Python\n"
        "Package Index, or `python\n"
        "-m pip`; PEP 8 says how.  Read tut venv.\n"
        "\n"
        "Note: All of these functions accept bytes.\n"
        "\n"
        "os.path.join(path, *paths)\n"
        "Join one or more path segments.  For example:\n"
        "\n"
        "    >>> join('a', 'b')\n"
        "    'a/b'\n"
        "\n"
        "Changed in version 3.6. Accepts a path-like object.\n"
        "\n"
        "    python3 -m venv env")


def test_an_rst_index_page_is_its_title(tmp_path):
    """A page of a title and a table of contents only is not an error: its title is its text."""
    path = tmp_path / "index.rst.txt"
    path.write_text("#####\n  FAQ\n#####\n\n.. toctree::\n   :maxdepth: 1\n\n   general.rst\n")
    [doc] = load_file(path, path.read_bytes())
    assert (doc.title, [(s.heading, s.text) for s in doc.sections]) == ("FAQ", [("FAQ", "FAQ")])


def test_code_stays_with_the_sentence_that_introduces_it():
    """A chunk does not end on "run:" while its command opens the next; a block over the budget is still split."""
    intro = "word " * 30 + "run:"
    text = f"{'filler ' * 60}\n\n{intro}\n\n    python3 -m venv env\n\n    source env/bin/activate\n\nAfter it."
    count = lambda t: len(t.split())  # noqa: E731
    chunks = split_section(Section("", text), count, 70)
    holding = [c.text for c in chunks if "run:" in c.text]
    assert len(holding) == 1 and holding[0].startswith("word")
    assert "run:\n\n    python3 -m venv env\n\n    source env/bin/activate" in holding[0]
    long_block = "Run:\n\n" + "\n\n".join("    step " + "x " * 30 for _ in range(4))
    parts = split_section(Section("", long_block), count, 70)
    assert len(parts) == 2 and all(c.tokens <= 70 for c in parts) and parts[1].text.startswith("    step")


def test_code_over_the_budget_is_cut_between_its_lines():
    """A long example is split into pieces that are still indented code, line by line as written."""
    lines = [f"    step_{i}(x) {{ return x + {i}; }}" for i in range(20)] + ["    " + "long " * 50]
    count = lambda t: len(t.split())  # noqa: E731
    chunks = split_section(Section("", "Example:\n\n" + "\n".join(lines)), count, 40)
    pieces = [line for c in chunks for line in c.text.split("\n") if line.strip() and line != "Example:"]
    assert all(c.tokens <= 40 for c in chunks) and len(chunks) > 2
    assert all(line.startswith("    ") for line in pieces)
    assert pieces[:20] == lines[:20]  # every short line whole, in order
    assert " ".join(pieces[20:]).split() == lines[20].split()  # the one line over the budget, by words


def test_deeply_nested_rst_directives_are_read_without_recursing_without_end(tmp_path):
    path = tmp_path / "deep.rst"
    path.write_text("".join(" " * depth + ".. note::\n\n" for depth in range(3000)) + " " * 3000 + "deep words\n")
    [doc] = load_file(path, path.read_bytes())
    assert "deep words" in doc.sections[0].text


def test_only_a_double_colon_announces_code_and_a_list_items_block_ends_at_its_text():
    """A literal block follows "::" and is what lies deeper than the text that announced it.

    After a bullet that is the text's column. An indented block after a single colon is a quotation
    or a nested list, not code.
    """
    page = ("Lists\n=====\n\n"
            "* Use :func:`getattr`::\n\n     getattr(foo, 'bar')()\n\n  Note that :func:`getattr` works on modules.\n\n"
            "* Functions:\n\n    * :c:func:`Py_Initialize`\n")
    title, sections = parse_rst(page)
    assert title == "Lists"
    assert sections[0].text == ("* Use `getattr`:\n\n    getattr(foo, 'bar')()\n\n  Note that `getattr` works on modules.\n\n"
                                "* Functions:\n\n    * `Py_Initialize`")
