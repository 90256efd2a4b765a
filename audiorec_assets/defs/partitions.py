"""Partitions that follow the lake: the four dynamic sets ``encoder``, ``audio_encoder``, ``recommender`` and
``reference``, kept in step by ``lake_partitions_sensor`` and ``audiorec demo`` (what each holds: docs/automation.md,
"Assets and partitions"). Only what can run here is offered; an encoder that cannot is listed, with the reason,
in the sensor's skip message instead."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from audiorec_assets.encoders import AUDIO_ENCODERS, NO_AUDIO_ENCODER, hybrid_base_of, is_twin, twin_base_of, twin_chain
from audiorec_assets.encoders.availability import metadata_problem, weights_problem
from audiorec_assets.encoders.base import EncoderContext
from audiorec_assets.recommenders import recommender_entry
from audiorec_assets.settings import ENCODER_NAME, ExperimentSettings, LakePaths
from audiorec_assets.study import study_cells

ENCODERS = dg.DynamicPartitionsDefinition(name="encoder")
AUDIO_ENCODER_SET = dg.DynamicPartitionsDefinition(name="audio_encoder")  # audiorec/audio_vectors
RECOMMENDERS = dg.DynamicPartitionsDefinition(name="recommender")
REFERENCES = dg.DynamicPartitionsDefinition(name="reference")
CELLS = dg.MultiPartitionsDefinition({"encoder": ENCODERS, "recommender": RECOMMENDERS})
# the study in a few words, for the assets' descriptions (the UI's lineage shows groups, without descriptions)
GRID = ("The study is an encoder × recommender grid: each audio encoder (group embeddings, a partition per "
        "encoder) with each recommender that uses audio (group recommenders, partition `encoder|recommender`) is "
        "one cell, trained and evaluated on its own; group references holds the recommenders without audio "
        "(encoder `none`), and group evaluation compares all cells (audiorec/leaderboard).")
DYNAMIC = (ENCODERS, AUDIO_ENCODER_SET, RECOMMENDERS, REFERENCES)


@dataclass
class LakeMembers:
    """What each dynamic partition set should hold for a lake and its settings, and what was left out."""

    members: dict[str, list[str]]
    left_out: dict[str, str] = field(default_factory=dict)  # encoder → why it cannot run here


def dropped_in_encoders(lake: LakePaths) -> list[str]:
    """``<lake>/embeddings/<name>.npy`` files that are not audiorec's own output: a user's vectors."""
    if not lake.embeddings.exists():
        return []
    own = set(AUDIO_ENCODERS) | {NO_AUDIO_ENCODER, "random", "shuffled"}
    names = sorted(p.stem for p in lake.embeddings.glob("*.npy") if not p.name.startswith("."))
    return [n for n in names if ENCODER_NAME.fullmatch(n) and n not in own and not is_twin(n)]


def lake_members(lake: LakePaths, settings: ExperimentSettings) -> LakeMembers:
    """The partitions the graph should offer now (pure: reads only the lake's files)."""
    context = EncoderContext(models_dir=settings.encode.models_dir)
    left_out: dict[str, str] = {}
    encoders: list[str] = []
    for name in [e for e in settings.encoders if e != NO_AUDIO_ENCODER] + dropped_in_encoders(lake):
        problem = weights_problem(name, context) if name in AUDIO_ENCODERS else _control_problem(name, lake)
        if problem:
            left_out[name] = problem
        elif name not in encoders:
            encoders.append(name)
    _drop_twins_without_inputs(encoders, left_out, lake, settings)
    cells = study_cells(settings)
    recommenders = list(dict.fromkeys(r for e, r in cells if e != NO_AUDIO_ENCODER))
    references = [r for e, r in cells if e == NO_AUDIO_ENCODER]
    return LakeMembers({ENCODERS.name: encoders, AUDIO_ENCODER_SET.name: audio_roots(encoders, settings),
                        RECOMMENDERS.name: recommenders, REFERENCES.name: references}, left_out)


def audio_roots(encoders: list[str], settings: ExperimentSettings) -> list[str]:
    """The partitions of ``audiorec/audio_vectors``: the audio encoders that ``encoders`` are (or are computed from) and
    that can run here. A twin whose base cannot run here but whose file is in the lake reads that file."""
    context = EncoderContext(models_dir=settings.encode.models_dir)
    roots = dict.fromkeys(twin_chain(e, settings.encode.shuffled_base)[-1] for e in encoders)
    return [r for r in roots if r in AUDIO_ENCODERS and not weights_problem(r, context)]


def _drop_twins_without_inputs(encoders: list[str], left_out: dict[str, str], lake: LakePaths,
                               settings: ExperimentSettings) -> None:
    """Remove (in place) the twins whose base cannot run here, and the hybrids without usable metadata."""
    shuffled_base = settings.encode.shuffled_base
    context = EncoderContext(models_dir=settings.encode.models_dir)
    hybrids = any(hybrid_base_of(n) is not None for n in encoders)
    no_metadata = metadata_problem(lake.raw, settings.hybrid) if hybrids else None  # read tracks.csv once
    for name in sorted(encoders, key=lambda n: len(twin_chain(n, shuffled_base))):  # bases before their twins
        base = twin_base_of(name, shuffled_base)
        if base is None:
            continue
        verb = "puts track metadata beside" if hybrid_base_of(name) else "permutes"
        runnable_audio = base in AUDIO_ENCODERS and not weights_problem(base, context)
        if base not in encoders and not runnable_audio and not lake.embedding_file(base).exists():
            encoders.remove(name)
            why = left_out.get(base, "not offered")
            left_out[name] = f"{verb} the vectors of {base!r}, which cannot run here ({why})"
        elif hybrid_base_of(name) is not None and no_metadata:
            encoders.remove(name)
            left_out[name] = no_metadata


def _control_problem(name: str, lake: LakePaths) -> str | None:
    """Controls (``random``, ``shuffled``) and twins (``shuffled_<encoder>``, ``hybrid_<encoder>``) always run;
    any other name needs its file."""
    if name == "random" or is_twin(name) or lake.embedding_file(name).exists():
        return None
    return f"not built in, and {lake.embedding_file(name)} does not exist (drop your vectors there)"


def partition_requests(instance: dg.DagsterInstance, wanted: LakeMembers
                       ) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
    """Add what is wanted and missing, delete what is no longer wanted (its history stays in the instance)."""
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    for definition in DYNAMIC:
        have = set(instance.get_dynamic_partitions(definition.name))
        want = wanted.members[definition.name]
        add = [k for k in want if k not in have]
        drop = sorted(have - set(want))
        if add:
            requests.append(definition.build_add_request(add))
        if drop:
            requests.append(definition.build_delete_request(drop))
    return requests


def sync_partitions(instance: dg.DagsterInstance, wanted: LakeMembers) -> None:
    """Apply :func:`partition_requests` to ``instance`` directly (``audiorec demo``)."""
    for request in partition_requests(instance, wanted):
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def cell_of(partition_key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(encoder, recommender)`` of a cell partition key (``"musicnn|knn"`` or a ``MultiPartitionKey``)."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
        return keys["encoder"], keys["recommender"]
    encoder, _, recommender = str(partition_key).partition("|")
    return encoder, recommender


def reference_audio(recommender: str) -> str:
    """What a reference model uses instead of audio, for its metadata."""
    return "no item vectors" if recommender_entry(recommender).audio == "none" else "learned item ids"
