"""Write the questions of an IRCoT-style JSONL file whose gold answer is "yes" or "no".

2Wiki's dev-330 holds 29 (23 "yes", 6 "no"); too few among the first questions to measure
yes/no handling, so `make bench-answers` evaluates them on their own. Their pooled paragraphs
(290) form the corpus of that run.

    python bench/yes_no_subset.py ../shared/data/2wiki/dev-330.jsonl /tmp/wiki-yes-no.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(source: Path, target: Path) -> int:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if r["answers_objects"][0]["spans"][0].strip().lower() in ("yes", "no")]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    print(f"{len(kept)} yes/no questions of {len(rows)} written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
