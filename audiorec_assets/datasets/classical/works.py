"""One work to render: where its score is and what tracks.csv says about it."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from audiorec_assets.datasets.classical.instruments import SCORINGS

TRACK_ID_MAX = 64


class ClassicalError(RuntimeError):
    """The classical catalogue cannot be built here (the message, one line, says why and what to do)."""


@dataclass(frozen=True)
class WorkSpec:
    """A score (a file of the music21 corpus, or any file music21 reads) and its catalogue metadata (``""`` / None
    where not known)."""

    track_id: str
    path: str  # corpus-relative (bach/bwv101.7.mxl) when source == "corpus", else a file path
    title: str
    scoring: str  # a key of instruments.SCORINGS
    source: str = "corpus"
    number: int | None = None  # the tune of a multi-tune file (ABC opus)
    merge_opus: bool = False  # the file holds one work's parts as separate tunes (the corpus's Josquin ABC files)
    composer: str = ""
    era: str = ""
    form: str = ""
    work: str = ""
    movement: int | None = None
    collection: str = ""
    region: str = ""
    default_qpm: float = 100.0  # the tempo (quarter notes per minute) rendered where the score marks none
    # a piece shorter than the excerpt (after its written repeats) is played again (folk tunes), not padded with silence
    loop_to_fill: bool = False
    group: str = field(default="", compare=False)  # the per-composer cap's key (composer, or the folk collection)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", self.track_id) or len(self.track_id) > TRACK_ID_MAX:
            raise ValueError(f"track id {self.track_id!r}: lower-case letters, digits, - and _ only "
                             f"(at most {TRACK_ID_MAX}); make one with slug()")
        if self.scoring not in SCORINGS:
            raise ValueError(f"work {self.track_id}: unknown scoring {self.scoring!r} (one of {sorted(SCORINGS)})")
        if self.source not in ("corpus", "file"):
            raise ValueError(f"work {self.track_id}: source must be 'corpus' or 'file', not {self.source!r}")

    @property
    def provenance(self) -> str:
        """``bach/bwv101.7.mxl`` or ``essenFolksong/altdeu10.abc#3``: the score, as tracks.csv names it."""
        return self.path if self.number is None else f"{self.path}#{self.number}"

    def to_json(self) -> dict:
        return asdict(self)


def slug(text: str, max_len: int = TRACK_ID_MAX) -> str:
    """A file-name-safe id: ASCII lower case, runs of anything else as one ``-``; cut to ``max_len`` with a
    short hash of the full text when cut (so two long names stay apart)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    out = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "work"
    if len(out) > max_len:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
        out = out[: max_len - 7].rstrip("-") + "-" + digest
    return out


def file_work(path: str | Path, *, title: str = "", scoring: str = "piano", track_id: str = "",
              number: int | None = None, **metadata: object) -> WorkSpec:
    """A :class:`WorkSpec` for a score file outside the corpus (``metadata``: composer, era, form, work, ...);
    the track id defaults to a slug of the file name."""
    path = Path(path)
    track_id = track_id or slug(path.stem + (f"-{number}" if number is not None else ""))
    fields = {"work": track_id, **metadata}
    return WorkSpec(track_id=track_id, path=str(path), title=title or path.stem, scoring=scoring, source="file",
                    number=number, **fields)  # type: ignore[arg-type]
