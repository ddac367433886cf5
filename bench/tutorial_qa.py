"""Questions about the bundled Python tutorial pages, as an evaluation dataset of long documents.

Run: ``.venv/bin/python bench/tutorial_qa.py OUT.jsonl``, then ``arag eval --dataset OUT.jsonl``.

HotpotQA's paragraphs are short, so strategies that matter for long documents (parent
sections, summary trees, compression) change little there. The seven pages of
``samples/python-tutorial`` (11,000 words, 250-3,400 a page; Python Software Foundation
License, see that folder's LICENSE) are long. This writes them, with 14 questions whose short
answers are stated on one page each, in the HotpotQA/IRCoT format that ``arag eval`` reads:
every page is a context of every question, the page holding the answer is the supporting one.
Each page is given as ``arag ingest`` reads it (:func:`arag.ingestion.loaders.parse_rst`: its
sections' headings and bodies, the reST roles and directives rendered as a reader sees them), so the
model and the "context holds the answer" score see ``Control-Z`` where the source says
``:kbd:`Control-Z```.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from arag.ingestion.loaders import parse_rst

PAGES = Path(__file__).resolve().parent.parent / "arag" / "samples" / "python-tutorial"
TITLES = {
    "appetite.rst": "Whetting Your Appetite", "errors.rst": "Errors and Exceptions",
    "interpreter.rst": "Using the Python Interpreter", "modules.rst": "Modules",
    "stdlib.rst": "Brief Tour of the Standard Library", "venv.rst": "Virtual Environments and Packages",
    "whatnow.rst": "What Now?",
}
#: (question, short answers, page that states it)
QUESTIONS = [
    ("Which television show is the Python language named after?", ["Monty Python's Flying Circus"], "appetite.rst"),
    ("Which key combination exits the interactive interpreter on Windows?", ["Control-Z"], "interpreter.rst"),
    ("What can you type to leave the interpreter if the end-of-file character does not work?", ["quit()"], "interpreter.rst"),
    ("Which command creates a virtual environment named tutorial-env?", ["python3 -m venv tutorial-env"], "venv.rst"),
    ("Which command leaves an active virtual environment?", ["deactivate"], "venv.rst"),
    ("In which file is the output of pip freeze conventionally saved?", ["requirements.txt"], "venv.rst"),
    ("In which directory does Python cache the compiled versions of modules?", ["__pycache__"], "modules.rst"),
    ("Which environment variable adds directories to the module search path?", ["PYTHONPATH"], "modules.rst"),
    ("Which file makes Python treat a directory as a package?", ["__init__.py"], "modules.rst"),
    ("Which module can create .pyc files for all modules in a directory?", ["compileall"], "modules.rst"),
    ("Which clause of a try statement runs whether or not an exception occurred?", ["finally"], "errors.rst"),
    ("Which built-in exception type wraps a list of exception instances?", ["ExceptionGroup"], "errors.rst"),
    ("Which module makes file lists from directory wildcard searches?", ["glob"], "stdlib.rst"),
    ("Which function of the random module samples without replacement?", ["random.sample", "sample"], "stdlib.rst"),
]


def page_text(name: str) -> str:
    """A tutorial page's text as ingestion reads it: each section's heading, then its body."""
    _, sections = parse_rst((PAGES / name).read_text(encoding="utf-8"))
    return "\n\n".join(f"{section.heading}\n\n{section.text}" for section in sections)


def rows() -> list[dict]:
    pages = {name: page_text(name) for name in TITLES}
    return [{
        "question_id": f"tutorial-{n}", "question_text": question,
        "answers_objects": [{"spans": answers}],
        "contexts": [{"id": name, "title": TITLES[name], "paragraph_text": text, "is_supporting": name == page}
                     for name, text in pages.items()],
    } for n, (question, answers, page) in enumerate(QUESTIONS, start=1)]


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows()), encoding="utf-8")
    print(f"wrote {len(QUESTIONS)} questions over {len(TITLES)} pages to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
