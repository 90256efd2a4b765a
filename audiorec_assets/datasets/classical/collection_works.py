"""How the files of each many-file collection of :mod:`.collections` become works (the ``build`` of a
:class:`~.collections.Collection`): titles, composers, forms, movements and the work they belong to, read
from the file names, the metadata bundle and what is known about the collection.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import PurePosixPath

from audiorec_assets.datasets.classical.bundle import Entry
from audiorec_assets.datasets.classical.works import slug

BACH = "Johann Sebastian Bach"


def bach_chorales(entries: list[Entry]) -> list[dict]:
    from music21.corpus import chorales

    titles = {bwv: info["title"] for bwv, info in chorales.ChoraleList().byBWV.items()}
    by_base: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        m = re.fullmatch(r"bwv(\d+(?:\.\d+)?)(-.+)?", e.stem)
        if m and e.stem != "bwv846":
            by_base[m.group(1)].append(e)
    works = []
    for base, versions in by_base.items():
        plain = [v for v in versions if v.stem == f"bwv{base}"]
        formats = {".mxl": 0, ".xml": 1, ".krn": 2}
        chosen = sorted(plain or versions, key=lambda v: (formats.get(PurePosixPath(v.path).suffix, 9), v.path))[0]
        cantata, _, movement = base.partition(".")
        title = titles.get(int(cantata)) if not movement else None
        works.append({
            "path": chosen.path,
            "title": f"{title} (BWV {base})" if title else f"Chorale BWV {base}",
            "composer": BACH, "era": "Baroque", "form": "chorale", "scoring": "chorale_organ",
            "work": f"bach-bwv{cantata}", "movement": int(movement) if movement else None, "default_qpm": 80.0,
        })
    return works


_MASS_ORDER = ("kyrie", "christe", "gloria", "credo", "sanctus", "benedictus", "agnus")
_MASS_LABEL = {"agnus": "Agnus Dei"}


def palestrina(entries: list[Entry]) -> list[dict]:
    """Each mass movement's opening section (files ``<Movement>[_<roman>][_<nn>][_a]``), grouped by mass."""
    masses: dict[str, list[tuple[tuple, Entry, str]]] = defaultdict(list)
    for e in entries:
        m = re.fullmatch(r"(Kyrie|Christe|Gloria|Credo|Sanctus|Benedictus|Agnus)(?:_([IV]+))?(?:_\d+)?(_a)?", e.stem)
        mass = e.text("parentTitle")
        if not m or not mass:
            continue
        word, roman = m.group(1).lower(), m.group(2) or ""
        label = _MASS_LABEL.get(word, word.capitalize()) + (f" {roman}" if roman else "")
        order = (_MASS_ORDER.index(word), len(roman), roman)
        masses[mass].append((order, e, label))
    works = []
    for mass, movements in masses.items():
        seen = set()
        for i, (_, e, label) in enumerate(sorted(movements, key=lambda t: (t[0], t[1].path)), start=1):
            title = f"{mass}: {label}"
            if title in seen:  # two settings of one movement (e.g. two Agnus files): keep them apart
                title = f"{title} ({e.stem})"
            seen.add(title)
            works.append({
                "path": e.path, "title": title, "composer": "Giovanni Pierluigi da Palestrina",
                "era": "Renaissance", "form": "mass movement", "scoring": "choir",
                "work": slug(f"palestrina {mass}"), "movement": i, "default_qpm": 120.0,
            })
    return works


def monteverdi(entries: list[Entry]) -> list[dict]:
    titles = {e.stem: e.text("title") for e in entries if e.path.endswith(".rntxt")}  # the analyses know titles
    works = []
    for e in entries:
        m = re.fullmatch(r"madrigal\.(\d+)\.(\d+)", e.stem)
        if not m or not e.path.endswith(".mxl"):
            continue
        book, number = m.groups()
        title = titles.get(e.stem) or f"Madrigal {book}.{number}"
        works.append({
            "path": e.path, "title": f"{title} (Book {book}, No. {number})", "composer": "Claudio Monteverdi",
            "era": "Renaissance", "form": "madrigal", "scoring": "vocal_ensemble",
            "work": f"monteverdi-madrigal-{book}-{number}", "default_qpm": 120.0,
        })
    return works


_MASS_WORDS = re.compile(r"\b(kyrie|gloria|credo|sanctus|agnus|benedicamus)\b", re.I)
_SIGLUM = re.compile(r"\s+(?:[A-Z]{1,3}-[A-Za-z]+|\?|\d|\().*$")


def _trecento_composer(entry: Entry) -> str:
    text = str(entry.meta.get("composer") or "").splitlines()[0].strip() if entry.meta.get("composer") else ""
    text = re.sub(r"\s*\(opus dubium\)", "", text)
    if re.match(r"anon", text, re.I):
        return "Anonymous"
    text = _SIGLUM.sub("", text).strip()
    if text:
        return text
    for word, name in (("Jacopo", "Jacopo da Bologna"), ("Giovanni", "Giovanni da Cascia"), ("Piero", "Piero")):
        if word in entry.stem:
            return name
    return ""


def trecento(entries: list[Entry]) -> list[dict]:
    works, seen = [], set()
    for e in sorted(entries, key=lambda e: (not e.path.endswith(".xml"), e.path)):  # .xml before an .mxl twin
        if e.stem.endswith("_bak") or e.stem in seen:
            continue
        seen.add(e.stem)
        name = e.stem.split("-", 1)[1] if "-" in e.stem else e.stem
        title = re.sub(r"[_\s]+", " ", name).strip()
        vol = re.match(r"PMFC_(\d+)", e.stem)
        if _MASS_WORDS.search(title):
            form = "mass movement"
        elif "madrigal" in e.text("title").lower():
            form = "madrigal"
        elif vol and vol.group(1) in ("01", "24"):  # PMFC 1: Philippe de Vitry's motets; PMFC 24: Ciconia's
            form = "motet"
        else:
            form = ""
        works.append({
            "path": e.path, "title": title, "composer": _trecento_composer(e), "era": "Medieval", "form": form,
            "scoring": "vocal_ensemble", "work": slug(f"trecento {e.stem}"), "default_qpm": 110.0,
        })
    return works


_JOSQUIN = {  # file stem → (title, form)
    "4vPerIlludAveProlatum": ("Per illud ave prolatum (Ave Maria ... virgo serena)", "motet"),
    "adieuMesAmours": ("Adieu mes amours", "chanson"),
    "fortunaDunGranTempo": ("Fortuna d'un gran tempo", ""),
    "laDeplorationDeLaMorteDeJohannesOckeghem": ("La déploration de la mort de Johannes Ockeghem", "chanson"),
    "laPlusDesPlus": ("La plus des plus", "chanson"),
    "milleRegrets": ("Mille regrets", "chanson"),
    "oVenusBant": ("O Venus bant", ""),
    "petiteCamusette": ("Petite camusette", "chanson"),
}


def josquin(entries: list[Entry]) -> list[dict]:
    works = []
    for stem in sorted({e.stem for e in entries}):
        first = min((e for e in entries if e.stem == stem), key=lambda e: e.number or 0)
        title, form = _JOSQUIN.get(stem, (first.text("title").rstrip(",") or stem, ""))
        works.append({
            "path": first.path, "number": None, "merge_opus": True, "title": title, "composer": "Josquin des Prez",
            "era": "Renaissance", "form": form, "scoring": "vocal_ensemble", "work": slug(f"josquin {stem}"),
            "default_qpm": 120.0,
        })
    return works


def quartets(composer: str, era: str, catalogue: str) -> Callable[[list[Entry]], list[dict]]:
    """String quartets: ``<dir>/<opus>/movement<n>.mxl`` (one movement) or ``<dir>/<opus>.mxl`` (a whole work)."""
    def build(entries: list[Entry]) -> list[dict]:
        works = []
        for e in entries:
            if not e.path.endswith((".mxl", ".xml")):  # the Humdrum copies of the same movements
                continue
            parts = PurePosixPath(e.path).parts
            opus = parts[1] if len(parts) == 3 else e.stem
            m = re.fullmatch(r"movement(\d+)", e.stem) if len(parts) == 3 else None
            if len(parts) == 3 and not m:
                continue  # e.g. an exposition excerpt: not a quartet movement
            name = _opus_name(opus, catalogue)
            movement = int(m.group(1)) if m else None
            title = f"String Quartet {name}" + (f": movement {movement}" if movement else "")
            form = "string quartet"
            if opus == "opus133":
                title, form = "Große Fuge, Op. 133", "fugue"
            works.append({
                "path": e.path, "title": title, "composer": composer, "era": era, "form": form,
                "scoring": "string_quartet", "work": slug(f"{composer.split()[-1]} {opus}"), "movement": movement,
                "default_qpm": 100.0,
            })
        return works
    return build


def _opus_name(opus: str, catalogue: str) -> str:
    """``opus18no1`` → ``Op. 18 No. 1``; ``k458`` → ``K. 458``."""
    m = re.fullmatch(r"opus(\d+)(?:no(\d+))?", opus)
    if m:
        return f"Op. {m.group(1)}" + (f" No. {m.group(2)}" if m.group(2) else "")
    m = re.fullmatch(r"k(\d+)", opus)
    return f"{catalogue} {m.group(1)}" if m else opus


_DANCES = ("slip jig", "set dance", "strathspey", "hornpipe", "quickstep", "quick step", "schottische", "mazurka",
           "reel", "jig", "march", "waltz", "polka", "air", "clog", "lament")


def _tune_form(title: str, default: str) -> str:
    lower = title.lower()
    for dance in _DANCES:
        if re.search(rf"\b{dance}s?\b", lower):
            return "quickstep" if dance == "quick step" else dance
    return default


def folk(collection_key: str, scoring: str, form: str, region: str = "", dedupe_numbers: bool = False,
          default_qpm: float = 120.0) -> Callable[[list[Entry]], list[dict]]:
    def build(entries: list[Entry]) -> list[dict]:
        works, numbers = [], set()
        for e in entries:
            if dedupe_numbers:  # O'Neill's: a tune number names one tune, whichever file (transcriber) has it
                if e.number in numbers:
                    continue
                numbers.add(e.number)
            title = e.text("title") or e.text("alternativeTitle")
            if not title:
                continue
            title = re.sub(r"\s*--\s*", " — ", title).strip(" .")
            tag = f"{e.stem}-{e.number:04d}" if e.number is not None else e.stem
            works.append({
                "path": e.path, "number": e.number, "title": title, "composer": "Traditional", "era": "Traditional",
                "form": _tune_form(title, form), "scoring": scoring, "region": e.text("localeOfComposition") or region,
                "work": slug(f"{collection_key} {tag}"), "default_qpm": default_qpm, "loop_to_fill": True,
            })
        return works
    return build
