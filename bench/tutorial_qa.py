"""Questions about the bundled Python tutorial pages, as an evaluation dataset of long documents.

Run: ``.venv/bin/python bench/tutorial_qa.py [--held-out] OUT.jsonl``, then ``arag eval --dataset OUT.jsonl``.

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

import argparse
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


#: Written after the chunk sizes of 2026-12-07 were chosen on QUESTIONS, to check them on questions
#: they were not chosen on (``--held-out``); each answer is stated on its page in these words.
HELD_OUT = [
    ("Which module provides high-level operations for copying and moving files?", ["shutil"], "stdlib.rst"),
    ("Which module offers a more sophisticated way to process command line arguments?", ["argparse"], "stdlib.rst"),
    ("Which module calculates the mean, median and variance of numeric data?", ["statistics"], "stdlib.rst"),
    ("Which module is used for sending mail?", ["smtplib"], "stdlib.rst"),
    ("Which module retrieves data from URLs?", ["urllib.request"], "stdlib.rst"),
    ("In which encoding are Python source files treated by default?", ["UTF-8"], "interpreter.rst"),
    ("Which exception is raised when the user interrupts the program?", ["KeyboardInterrupt"], "errors.rst"),
    ("Which built-in function finds out which names a module defines?", ["dir()", "dir"], "modules.rst"),
    ("Which variable defines the interpreter's primary prompt?", ["sys.ps1"], "modules.rst"),
    ("Which exception does dividing by zero raise?", ["ZeroDivisionError"], "errors.rst"),
    ("Which site hosts a repository of third-party Python modules?", ["Python Package Index", "PyPI"], "whatnow.rst"),
    ("Which pip command displays information about a particular package?", ["pip show"], "venv.rst"),
    ("Which pip command lists all of the packages installed in the virtual environment?", ["pip list"], "venv.rst"),
    ("Which pip command removes packages?", ["pip uninstall"], "venv.rst"),
    ("Which directory of third-party packages does the site module add to the module search path?", ["site-packages"],
     "modules.rst"),
    ("Which newsgroup can Python questions be posted to?", ["comp.lang.python"], "whatnow.rst"),
    ("Which statement forces a specified exception to occur?", ["raise"], "errors.rst"),
    ("What is the file name extension of compiled Python modules?", [".pyc", "pyc"], "modules.rst"),
]


def page_text(name: str) -> str:
    """A tutorial page's text as ingestion reads it: each section's heading, then its body."""
    _, sections = parse_rst((PAGES / name).read_text(encoding="utf-8"))
    return "\n\n".join(f"{section.heading}\n\n{section.text}" for section in sections)


def rows(questions: list[tuple[str, list[str], str]] = QUESTIONS) -> list[dict]:
    pages = {name: page_text(name) for name in TITLES}
    return [{
        "question_id": f"tutorial-{n}", "question_text": question,
        "answers_objects": [{"spans": answers}],
        "contexts": [{"id": name, "title": TITLES[name], "paragraph_text": text, "is_supporting": name == page}
                     for name, text in pages.items()],
    } for n, (question, answers, page) in enumerate(questions, start=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the JSONL file to write")
    parser.add_argument("--held-out", action="store_true", help="write the held-out questions instead")
    args = parser.parse_args()
    questions = HELD_OUT if args.held_out else QUESTIONS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows(questions)), encoding="utf-8")
    print(f"wrote {len(questions)} questions over {len(TITLES)} pages to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
