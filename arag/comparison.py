"""Comparison questions ("Are X and Y from the same country?") decided in code, not by the model.

Asked for a yes or a no, the 1.5B local model answers "yes" nearly always. Asked instead for
each side's fact ("X: Norway", "Y: Iran") it is much more often right, and whether the two
facts agree is a string comparison that has no bias. This module holds the parts that need
no model: which questions are of this shape and what attribute they compare, reading the
model's two lines, and deciding whether two values name the same thing, countries and
nationality words ("American", "United States") included.

Example:
    >>> compared_attribute("Were Scott Derrickson and Ed Wood of the same nationality?")
    'nationality'
    >>> compared_attribute("Who was born first, Ed Wood or Scott Derrickson?") is None
    True
    >>> read_sides("Ed Wood: American\\nScott Derrickson: American")
    [('Ed Wood', 'American'), ('Scott Derrickson', 'American')]
    >>> same_value("American", "United States"), same_value("Germany", "West Germany")
    (True, False)
"""

from __future__ import annotations

import re
import unicodedata

from arag.llms.yes_no import is_yes_no_question

#: "the same country", "the same nationality", "share the same genre": the attribute after "same".
_SAME = re.compile(r"\bsame\s+([a-z][a-z -]{1,40}?)\s*(?:\?|$|,|\bas\b)", re.IGNORECASE)
#: Words that end the attribute ("the same country of origin" keeps "country of origin").
_ATTRIBUTE_STOP = re.compile(r"\s+(?:and|or|but|both|in|at|for)\b.*$", re.IGNORECASE)
_UNKNOWN = re.compile(r"^(?:unknown|not (?:stated|given|known|mentioned|found)|n/?a|none|-)\W*$", re.IGNORECASE)
#: Several values for one side: "Canada, United Kingdom", "Indian and American", "German-American".
_VALUE_SEPARATOR = re.compile(r"\s*(?:,|;|/|&|\band\b|-(?=[A-Z])|\s-\s)\s*")

#: Country names and the words for their people that do not share a stem with the name.
#: Stems that agree (Italy/Italian, Canada/Canadian, India/Indian) need no entry: see ``same_value``.
_COUNTRY_WORDS = {
    "united states": "united states", "united states of america": "united states", "usa": "united states",
    "us": "united states", "u s": "united states", "america": "united states", "american": "united states",
    "united kingdom": "united kingdom", "uk": "united kingdom", "u k": "united kingdom", "britain": "united kingdom",
    "great britain": "united kingdom", "british": "united kingdom", "england": "united kingdom",
    "english": "united kingdom", "scotland": "united kingdom", "scottish": "united kingdom",
    "wales": "united kingdom", "welsh": "united kingdom", "northern ireland": "united kingdom",
    "france": "france", "french": "france", "netherlands": "netherlands", "holland": "netherlands",
    "dutch": "netherlands", "spain": "spain", "spanish": "spain", "sweden": "sweden", "swedish": "sweden",
    "denmark": "denmark", "danish": "denmark", "finland": "finland", "finnish": "finland", "poland": "poland",
    "polish": "poland", "switzerland": "switzerland", "swiss": "switzerland", "turkey": "turkey",
    "turkish": "turkey", "greece": "greece", "greek": "greece", "ireland": "ireland", "irish": "ireland",
    "portugal": "portugal", "portuguese": "portugal", "philippines": "philippines", "filipino": "philippines",
    "philippine": "philippines", "thailand": "thailand", "thai": "thailand", "czech republic": "czechia",
    "czechia": "czechia", "czech": "czechia", "norway": "norway", "norwegian": "norway", "iceland": "iceland",
    "icelandic": "iceland", "new zealand": "new zealand", "new zealander": "new zealand", "belgium": "belgium",
    "belgian": "belgium", "pakistan": "pakistan", "pakistani": "pakistan", "bangladesh": "bangladesh",
    "bangladeshi": "bangladesh", "china": "china", "chinese": "china", "japan": "japan", "japanese": "japan",
    "vietnam": "vietnam", "vietnamese": "vietnam", "lebanon": "lebanon", "lebanese": "lebanon",
    "argentina": "argentina", "argentine": "argentina", "argentinian": "argentina", "peru": "peru",
    "peruvian": "peru", "israel": "israel", "israeli": "israel", "iraq": "iraq", "iraqi": "iraq",
    "kuwait": "kuwait", "kuwaiti": "kuwait", "soviet union": "soviet union", "ussr": "soviet union",
    "soviet": "soviet union", "croatia": "croatia", "croatian": "croatia", "croat": "croatia",
    "serbia": "serbia", "serbian": "serbia", "serb": "serbia", "slovakia": "slovakia", "slovak": "slovakia",
    "slovenia": "slovenia", "slovenian": "slovenia", "slovene": "slovenia", "madagascar": "madagascar",
    "malagasy": "madagascar", "cape verde": "cape verde", "cape verdean": "cape verde", "monaco": "monaco",
    "monegasque": "monaco", "cyprus": "cyprus", "cypriot": "cyprus", "luxembourg": "luxembourg",
    "luxembourgish": "luxembourg", "uae": "united arab emirates", "emirati": "united arab emirates",
    "south korea": "south korea", "korea": "south korea", "korean": "south korea", "south korean": "south korea",
}
#: Two stems agree when they share all but this many closing letters ("ital-y", "ital-ian").
_STEM_SLACK = 1
_STEM_MIN = 4


def compared_attribute(question: str) -> str | None:
    """The attribute a yes/no question asks two things to share ("country"), or None for other questions."""
    if not is_yes_no_question(question):
        return None
    found = _SAME.search(question)
    if not found:
        return None
    attribute = _ATTRIBUTE_STOP.sub("", found.group(1)).strip().lower()
    return attribute or None


def read_sides(reply: str) -> list[tuple[str, str]]:
    """The ``name: value`` lines of the model's reply, in order; other lines are ignored."""
    sides = []
    for line in reply.splitlines():
        line = line.strip().lstrip("-*0123456789.) ").strip()
        if ":" not in line:
            continue
        name, value = (part.strip().strip("*").strip() for part in line.rsplit(":", 1))
        if name and value:
            sides.append((name, value.rstrip(".")))
    return sides


#: A title's closing qualifier: "Three Live Ghosts (1936 film)" is also asked about as "Three Live Ghosts".
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")


def _names(title: str) -> tuple[str, str]:
    """The title made plain, and made plain without its closing qualifier (the same when it has none)."""
    return _plain(title), _plain(_QUALIFIER.sub("", title))


def _mentions(text: str, name: str) -> int | None:
    """Where ``name`` occurs in ``text`` as whole words (both plain), or None."""
    found = re.search(rf"(?:^| ){re.escape(name)}(?: |$)", text)
    return None if found is None else found.start()


def mentions(text: str, title: str) -> bool:
    """Whether ``text`` names ``title`` (or the title without its qualifier) as whole words.

    Example:
        >>> mentions("Directed by Marcel Varnel.", "Marcel Varnel"), mentions("Varnelli", "Varnel")
        (True, False)
    """
    plain = _plain(text)
    return any(len(name) >= 3 and _mentions(plain, name) is not None
               for name in set(_names(title)))


def strip_mentions(text: str, title: str) -> str:
    """``text`` made plain, without its mentions of ``title`` (or the title without its qualifier).

    Example:
        >>> strip_mentions("Between Day and Night is a film.", "Between Day and Night")
        'is a film'
    """
    plain = f" {_plain(text)} "
    for name in sorted(set(_names(title)), key=len, reverse=True):
        if name:
            plain = plain.replace(f" {name} ", " ")
    return " ".join(plain.split())


def named_sides(question: str, titles: list[str]) -> list[str]:
    """The two titles the question names, in the question's order; fewer when it does not name two.

    A full title wins over the same title without its qualifier, and a longer name over one inside
    it, so "Three Live Ghosts (1936 Film)" picks the 1936 film's page, not the 1929 one's.

    Example:
        >>> named_sides("Are both Three Live Ghosts (1936 Film) and The Tailor From Ulm from the same country?",
        ...             ["Three Live Ghosts (1929 film)", "The Tailor from Ulm", "Three Live Ghosts (1936 film)"])
        ['Three Live Ghosts (1936 film)', 'The Tailor from Ulm']
    """
    asked = _plain(question)
    matches = []  # (full title matched, name length, start, title)
    for title in dict.fromkeys(titles):
        for full, name in zip((True, False), _names(title)):
            start = _mentions(asked, name) if len(name) >= 3 else None
            if start is not None:
                matches.append((full, len(name), start, title))
                break
    chosen: list[tuple[int, int, str]] = []
    for full, length, start, title in sorted(matches, key=lambda m: (not m[0], -m[1])):
        if all(start + length <= s or s + n <= start for s, n, _ in chosen):
            chosen.append((start, length, title))
    return [title for _, _, title in sorted(chosen[:2])]


def is_unknown(value: str) -> bool:
    """Whether the model said the sources do not give this side's value."""
    return bool(_UNKNOWN.match(value.strip()))


def _plain(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", ascii_text.lower()).split())


def _canonical(value: str) -> str:
    plain = _plain(value)
    plain = re.sub(r"^(?:the|a|an)\s+", "", plain)
    return _COUNTRY_WORDS.get(plain, plain)


def _stems_agree(a: str, b: str) -> bool:
    if " " in a or " " in b:
        return a == b
    shared = 0
    for x, y in zip(a, b):
        if x != y:
            break
        shared += 1
    return shared >= _STEM_MIN and shared >= min(len(a), len(b)) - _STEM_SLACK


def _one_value_agrees(a: str, b: str) -> bool:
    ca, cb = _canonical(a), _canonical(b)
    return bool(ca) and (ca == cb or _stems_agree(ca, cb))


def values(value: str) -> list[str]:
    """The separate values of one side ("Canada, United Kingdom" gives two)."""
    return [part for part in _VALUE_SEPARATOR.split(value.strip()) if part.strip()]


#: A hyphen, dash or slash between two parts of one value ("Canadian- British", "US/UK").
_JOINER = r"\s*[-–/]\s*"


def widen_value(value: str, texts: list[str]) -> str:
    """``value`` with the capitalised words its passage joins to it: asked for a film's country, the
    model writes "Canadian" where the passage says "a Canadian- British film"; the passage's whole
    "Canadian-British" is the value. Lower-case joins ("Canadian- born") are not values.

    Example:
        >>> widen_value("Canadian", ["Touch of Pink is a 2004 Canadian- British comedy."])
        'Canadian-British'
        >>> widen_value("Canadian", ["A Canadian- born director."]), widen_value("unknown", ["A Canadian- British film."])
        ('Canadian', 'unknown')
    """
    if not value or is_unknown(value):
        return value
    compound = re.compile(rf"(?:[A-Z][\w.]*{_JOINER})*\b{re.escape(value)}\b(?:{_JOINER}[A-Z][\w.]*)*", re.IGNORECASE)
    for text in texts:
        for found in compound.finditer(text):
            parts = [part for part in re.split(_JOINER, found.group(0)) if part]
            # The IGNORECASE flag also loosens the neighbours; only capitalised ones are kept.
            kept = [part for part in parts if part[0].isupper() or _plain(part) == _plain(value)]
            if len(kept) > 1 and len(kept) == len(parts):
                return "-".join(kept)
    return value


def same_value(a: str, b: str) -> bool:
    """Whether two sides' values name one thing: equal after normalising, a country and its people's
    word, or, for sides with several values, any one in common.

    Example:
        >>> same_value("Italian", "Italy"), same_value("Canada, British", "United Kingdom"), same_value("Iran", "Iraq")
        (True, True, False)
    """
    if _one_value_agrees(a, b):
        return True
    return any(_one_value_agrees(x, y) for x in values(a) for y in values(b))


__all__ = ["compared_attribute", "is_unknown", "mentions", "named_sides", "read_sides", "same_value", "strip_mentions",
           "values", "widen_value"]
