"""Which collections of the music21 corpus the classical catalogue renders, and what is known about them.

The corpus's metadata bundle (:mod:`.bundle`) names files, tunes, titles, regions and part counts, but its composer
and title fields are uneven (a Monteverdi madrigal's title sits in its composer field, most quartet movements are
titled by file name). So each *collection* fixes what is known about a group of files — composer, era, form,
scoring — and reads titles from the bundle where it has them. What is not known stays empty. Eras are the style
periods of the composer's (or, where a composer spans two, the work's) style; folk collections are ``Traditional``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from audiorec_assets.datasets.classical.bundle import Entry
from audiorec_assets.datasets.classical.collection_works import (BACH, bach_chorales, folk, josquin, monteverdi,
                                                                 palestrina, quartets, trecento)


@dataclass(frozen=True)
class Collection:
    """A group of corpus files with what is known about them; ``build`` turns its entries into works."""

    key: str  # track-id prefix
    name: str  # the collection column
    match: Callable[[Entry], bool]
    build: Callable[[list[Entry]], list[dict]]  # WorkSpec fields (without track_id/collection), one per track
    cap_share: float = 1.0  # of max_per_composer: folk collections take half, so they stay under a third
    id_prefix: bool = True  # track ids start with the key (else with the corpus folder: single works)


def _prefix(*prefixes: str, exclude: str | None = None) -> Callable[[Entry], bool]:
    def match(entry: Entry) -> bool:
        return entry.path.startswith(prefixes) and not (exclude and re.search(exclude, entry.path))
    return match


def _one(path: str, **fields: object) -> tuple[str, dict]:
    return path, fields


def _singles(table: dict[str, dict]) -> Callable[[list[Entry]], list[dict]]:
    """Works described one by one (files of which the corpus holds one or two)."""
    def build(entries: list[Entry]) -> list[dict]:
        have = {e.path for e in entries}
        return [{"path": path, **fields} for path, fields in table.items() if path in have]
    return build


_SINGLES: dict[str, dict] = dict([
    _one("bach/bwv846.mxl", title="Prelude in C major, BWV 846 (The Well-Tempered Clavier, Book I)", composer=BACH,
         era="Baroque", form="prelude", scoring="harpsichord", work="bach-bwv846", default_qpm=72.0),
    _one("corelli/opus3no1/1grave.xml", title="Sonata da chiesa Op. 3 No. 1: Grave", composer="Arcangelo Corelli",
         era="Baroque", form="trio sonata", scoring="trio_sonata", work="corelli-op3-no1", movement=1,
         default_qpm=60.0),
    _one("handel/rinaldo/Lascia_chio_pianga.mxl", title="Lascia ch'io pianga (Rinaldo)",
         composer="George Frideric Handel", era="Baroque", form="aria", scoring="voice_piano",
         work="handel-rinaldo", default_qpm=60.0),
    _one("cpebach/h186.mxl", title="Sonata in A major, H. 186 (Wq. 55/4): Poco adagio",
         composer="Carl Philipp Emanuel Bach", era="Classical", form="keyboard sonata", scoring="piano",
         work="cpebach-h186", movement=2, default_qpm=60.0),
    _one("mozart/k545/movement1_exposition.mxl", title="Piano Sonata in C major, K. 545: Allegro (exposition)",
         composer="Wolfgang Amadeus Mozart", era="Classical", form="piano sonata", scoring="piano",
         work="mozart-k545", movement=1, default_qpm=132.0),
    _one("schumann_robert/dichterliebe_no2.xml", title="Aus meinen Tränen sprießen (Dichterliebe, Op. 48 No. 2)",
         composer="Robert Schumann", era="Romantic", form="lied", scoring="voice_piano",
         work="schumann-dichterliebe", movement=2, default_qpm=50.0),
    _one("schumann_clara/opus17/movement3.xml", title="Piano Trio in G minor, Op. 17: movement 3",
         composer="Clara Schumann", era="Romantic", form="piano trio", scoring="piano_trio",
         work="clara-schumann-op17", movement=3, default_qpm=80.0),
    *[_one(f"schumann_clara/polonaise_op1n{n}.mxl", title=f"Polonaise Op. 1 No. {n}", composer="Clara Schumann",
           era="Romantic", form="polonaise", scoring="piano", work="clara-schumann-op1", movement=n,
           default_qpm=96.0) for n in (1, 2, 3, 4)],
    _one("chopin/mazurka06-2.krn", title="Mazurka in C-sharp minor, Op. 6 No. 2", composer="Frédéric Chopin",
         era="Romantic", form="mazurka", scoring="piano", work="chopin-op6", movement=2, default_qpm=120.0),
    _one("schubert/Lindenbaum.xml", title="Der Lindenbaum (Winterreise, D. 911 No. 5)", composer="Franz Schubert",
         era="Romantic", form="lied", scoring="voice_piano", work="schubert-winterreise", movement=5,
         default_qpm=80.0),
    _one("verdi/laDonnaEMobile.mxl", title="La donna è mobile (Rigoletto)", composer="Giuseppe Verdi",
         era="Romantic", form="aria", scoring="piano", work="verdi-rigoletto", default_qpm=75.0),
    _one("weber/concertino_clarinet.mxl", title="Concertino for Clarinet, Op. 26 (clarinet and piano)",
         composer="Carl Maria von Weber", era="Romantic", form="concertino", scoring="clarinet_piano",
         work="weber-op26", default_qpm=72.0),
    _one("liliuokalani/aloha_oe.mxl", title="Aloha ʻOe", composer="Liliʻuokalani", era="Romantic", form="song",
         scoring="voices_piano", work="liliuokalani-aloha-oe", default_qpm=90.0),
    _one("joplin/maple_leaf_rag.mxl", title="Maple Leaf Rag", composer="Scott Joplin", era="Modern",
         form="ragtime", scoring="piano", work="joplin-maple-leaf-rag", default_qpm=100.0),
    _one("johnson_j_r/lift_every_voice.mxl", title="Lift Every Voice and Sing", composer="J. Rosamond Johnson",
         era="Modern", form="hymn", scoring="voices_piano", work="johnson-lift-every-voice", default_qpm=90.0),
    _one("beach/prayer_of_a_tired_child.musicxml", title="Prayer of a Tired Child, Op. 75 No. 4",
         composer="Amy Beach", era="Modern", form="song", scoring="voices_piano", work="beach-op75", movement=4,
         default_qpm=80.0),
    *[_one(f"schoenberg/opus19/movement{n}.mxl", title=f"Six Little Piano Pieces, Op. 19: No. {n}",
           composer="Arnold Schoenberg", era="Modern", form="piano piece", scoring="piano", work="schoenberg-op19",
           movement=n, default_qpm=60.0) for n in (2, 6)],
    _one("webern/webern_dormi_jesu_op_16_no_2.mxl", title="Dormi Jesu (Five Canons, Op. 16 No. 2)",
         composer="Anton Webern", era="Modern", form="canon", scoring="voice_clarinet", work="webern-op16",
         movement=2, default_qpm=60.0),
    _one("ciconia/quod_jactatur.xml", title="Quod jactatur (canon, melody only)", composer="Johannes Ciconia",
         era="Medieval", form="canon", scoring="vocal_ensemble", work="ciconia-quod-jactatur", default_qpm=110.0),
    _one("luca/gloria.xml", title="Gloria (Q15)", composer="D. Luca", era="Medieval", form="mass movement",
         scoring="vocal_ensemble", work="luca-gloria", default_qpm=110.0),
    _one("lusitano/allor_che_ignuda.mxl", title="Allor che ignuda d'herb et fior la terra",
         composer="Vicente Lusitano", era="Renaissance", form="madrigal", scoring="vocal_ensemble",
         work="lusitano-allor-che-ignuda", default_qpm=120.0),
])

# the round-robin order: eras and scorings interleave, so even a small selection is varied
COLLECTIONS: tuple[Collection, ...] = (
    Collection("bach", "Bach chorales (music21 corpus)", _prefix("bach/bwv", exclude=r"bwv846"), bach_chorales),
    Collection("oneills", "O'Neill's Music of Ireland: 1850 Melodies", _prefix("oneills1850/"),
               folk("oneills", "fiddle", "folk tune", region="Ireland", dedupe_numbers=True), cap_share=0.5),
    Collection("haydn", "Haydn string quartets", _prefix("haydn/"), quartets("Joseph Haydn", "Classical", "")),
    Collection("palestrina", "Palestrina masses", _prefix("palestrina/"), palestrina),
    Collection("misc", "Works of the music21 corpus", lambda e: e.path in _SINGLES, _singles(_SINGLES),
               id_prefix=False),
    Collection("essen", "Essen Folksong Collection", _prefix("essenFolksong/", exclude=r"/test"),
               folk("essen", "flute", "folk song"), cap_share=0.5),
    Collection("mozart", "Mozart string quartets", _prefix("mozart/k80/", "mozart/k155/", "mozart/k156/",
                                                            "mozart/k458/"),
               quartets("Wolfgang Amadeus Mozart", "Classical", "K.")),
    Collection("monteverdi", "Monteverdi madrigals, Books 3-5", _prefix("monteverdi/", exclude=r"_old"), monteverdi),
    Collection("ryans", "Ryan's Mammoth Collection", _prefix("ryansMammoth/"), folk("ryans", "fiddle", "folk tune"),
               cap_share=0.5),
    Collection("beethoven", "Beethoven string quartets", _prefix("beethoven/"),
               quartets("Ludwig van Beethoven", "Classical", "")),
    Collection("trecento", "Trecento and ars nova (PMFC editions)", _prefix("trecento/"), trecento),
    Collection("aird", "Aird's Selection of Scotch, English, Irish and Foreign Airs", _prefix("airdsAirs/"),
               folk("aird", "flute", "air", region=""), cap_share=0.5),
    Collection("schumann", "Schumann string quartets", _prefix("schumann_robert/opus41no1/"),
               quartets("Robert Schumann", "Romantic", "")),
    Collection("josquin", "Josquin chansons and motets", _prefix("josquin/"), josquin),
    Collection("fife", "American fife tunes", _prefix("miscFolk/americanfife"),
               folk("fife", "piccolo", "folk tune", region="United States"), cap_share=0.5),
    Collection("northumbrian", "Northumbrian Minstrelsy", _prefix("miscFolk/northumbrian"),
               folk("northumbrian", "bagpipe", "folk tune", region="England, Northumberland"), cap_share=0.5),
)
