"""The installed music21 corpus as its metadata bundle lists it: one :class:`Entry` per file, or per tune of a
multi-tune file, read without parsing a score."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Entry:
    """One item of the corpus's metadata bundle: a file, or one tune of a multi-tune file."""

    path: str  # corpus-relative, e.g. "bach/bwv101.7.mxl"
    number: int | None  # the tune of a multi-tune file
    meta: dict  # the bundle's metadata fields (title, movementName, composer, localeOfComposition, ...)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem

    def text(self, name: str) -> str:
        value = self.meta.get(name)
        return " ".join(str(value).split()) if value not in (None, "") else ""


def corpus_entries() -> list[Entry]:
    """Every scored item of the installed core corpus (from music21's metadata bundle: no score is parsed)."""
    from music21 import corpus

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # the bundle has no __iter__: iterating it indexes a fresh list per item (minutes); read its entries directly
    items = getattr(bundle, "_metadataEntries", None)
    raw: list[tuple[str, int | None, dict]] = []
    for item in (items.values() if items is not None else bundle):
        if item.metadata is None:  # a multi-tune file's own entry: its tunes have entries of their own
            continue
        path = str(item.sourcePath)
        number = item.number
        try:
            number = int(number) if number not in (None, "") else None
        except (TypeError, ValueError):
            continue  # tunes numbered "12a" cannot be asked for by number
        raw.append((path, number, dict(item.metadata.all())))
    per_file = Counter(path for path, _, _ in raw)
    return sorted((Entry(p, n if per_file[p] > 1 else None, m) for p, n, m in raw),
                  key=lambda e: (e.path, e.number or 0))
