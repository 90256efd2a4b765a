"""Observable sources: the files and settings the study reads from outside the graph, each reporting a content
fingerprint as its data version, so an asset built from an older version is stale (what each source covers:
docs/automation.md, the ``observe_inputs_sensor`` row). The ``audiorec/settings/<part>`` sources split the
settings by the layer that reads them: editing ``shallow.max_epochs`` makes only the ``shallow`` partitions stale."""

from __future__ import annotations

import dagster as dg

from audiorec_assets.defs.partitions import AUDIO_ENCODER_SET, ENCODERS, RECOMMENDERS, REFERENCES
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.encoders import AUDIO_ENCODERS, CONTROL_ENCODERS, hybrid_base_of, shuffled_base_of, twin_chain
from audiorec_assets.encoders.availability import weights_files
from audiorec_assets.encoders.base import EncoderContext
from audiorec_assets.fingerprints import ContentHashes, combine, visible_files
from audiorec_assets.recommenders.registry import RECOMMENDERS as RECOMMENDERS_REGISTRY
from audiorec_assets.settings import ExperimentSettings, LakePaths

RAW_LOG = dg.AssetKey(["audiorec", "raw_log"])
RAW_AUDIO = dg.AssetKey(["audiorec", "raw_audio"])
ENCODER_INPUTS = dg.AssetKey(["audiorec", "encoder_inputs"])
EMBEDDING_INPUTS = dg.AssetKey(["audiorec", "embedding_inputs"])
SETTINGS_INGEST = dg.AssetKey(["audiorec", "settings", "ingest"])
SETTINGS_RECOMMEND = dg.AssetKey(["audiorec", "settings", "recommend"])
SETTINGS_EVALUATE = dg.AssetKey(["audiorec", "settings", "evaluate"])
SETTINGS_TABLES = dg.AssetKey(["audiorec", "settings", "tables"])
SETTINGS_MODEL = dg.AssetKey(["audiorec", "settings", "model"])
SETTINGS_REFERENCE = dg.AssetKey(["audiorec", "settings", "reference"])

AUDIO_FOLDERS = ("audio", "audios")  # own layout, Music4All-Onion
SOURCE_KEYS = (RAW_LOG, RAW_AUDIO, ENCODER_INPUTS, EMBEDDING_INPUTS, SETTINGS_INGEST, SETTINGS_RECOMMEND,
               SETTINGS_EVALUATE, SETTINGS_TABLES, SETTINGS_MODEL, SETTINGS_REFERENCE)
# what each unpartitioned settings source covers (top-level fields of experiment.yaml)
UNPARTITIONED_SETTINGS = {
    SETTINGS_INGEST: ("preset", "seed", "split", "missing_audio", "duplicates", "audio_checks"),
    SETTINGS_RECOMMEND: ("top_n",),
    SETTINGS_EVALUATE: ("ks", "top_n", "headline_k"),
    SETTINGS_TABLES: ("ks", "seed", "headline_k", "encoders", "recommenders"),
}
# what every trained cell depends on, plus its recommender's own section
MODEL_SETTINGS = ("preset", "seed", "seeds")
DATA_VERSION_TAG = "dagster/data_version"  # where an AssetObservation carries its data version


def _hashes(paths: LakePaths) -> ContentHashes:
    return ContentHashes(paths.tmp / "fingerprints" / "content_hashes.json")


def audio_version(paths: LakePaths, hashes: ContentHashes) -> str:
    """The audio files' fingerprint (paths relative to ``raw/``)."""
    return hashes.folder(paths.raw, [f"{folder}/{name}" for folder in AUDIO_FOLDERS
                                     for name in visible_files(paths.raw / folder)])


def log_version(paths: LakePaths, hashes: ContentHashes) -> str:
    """Every file under ``raw/`` but the audio: the log, ``tracks.csv``, the synthetic-log marker."""
    files = visible_files(paths.raw, skip=AUDIO_FOLDERS)
    return hashes.folder(paths.raw, files) if files else "empty"


def _raw_source(key: dg.AssetKey, version_of, description: str):
    """An observable source whose version is ``version_of(paths, hashes)`` over files under ``raw/``."""
    @dg.observable_source_asset(key=key, group_name="inputs", description=description)
    def _source(lake: LakeResource) -> dg.DataVersion:
        paths = lake.paths()
        hashes = _hashes(paths)
        version = version_of(paths, hashes)
        hashes.save()
        return dg.DataVersion(version)

    return _source


raw_log = _raw_source(RAW_LOG, log_version, "The listening log and metadata files under `<lake>/raw/` (content hash).")
raw_audio = _raw_source(RAW_AUDIO, audio_version, "The audio files under `<lake>/raw/audio/` (or `audios/`): content hash.")


def encoder_input_version(name: str, settings: ExperimentSettings, audio: str) -> str:
    """What audio encoder ``name`` reads besides the catalogue (``audio``: the audio's version), as one fingerprint."""
    encode = settings.encode.model_dump(exclude={"device", "precision", "standardize", "batch_size", "shuffled_base"})
    context = EncoderContext(models_dir=settings.encode.models_dir)
    weights = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights_files(name, context)]
    return combine("audio", audio, encode, weights)


def embedding_input_version(name: str, paths: LakePaths, settings: ExperimentSettings, hashes: ContentHashes) -> str:
    """What embeddings partition ``name`` reads besides the catalogue and the audio encoders' vectors (which reach
    it through the graph), as one fingerprint: down a twin's chain, the seed, the ``hybrid`` settings, the
    setting ``encode.shuffled_base`` where they are used, and a user's file (theirs or a twin's root)."""
    if name in AUDIO_ENCODERS:
        return "audiorec/audio_vectors"
    chain = twin_chain(name, settings.encode.shuffled_base)
    parts: list[object] = [len(chain)]
    if "random" in chain or any(shuffled_base_of(e, settings.encode.shuffled_base) for e in chain):
        parts += ["seed", settings.seed]
    if any(hybrid_base_of(e) for e in chain):
        parts += ["hybrid", settings.fingerprint("hybrid")]
    if any(e in CONTROL_ENCODERS for e in chain):
        parts += ["shuffled_base", settings.encode.shuffled_base]
    root = chain[-1]
    if root not in AUDIO_ENCODERS and root != "random":
        user_file = paths.embedding_file(root)
        parts += ["file", hashes.of(user_file) if user_file.exists() else "missing"]
    return combine(*parts)


def embedding_input_versions(names: list[str], paths: LakePaths, settings: ExperimentSettings,
                             hashes: ContentHashes) -> dict[str, str]:
    return {n: embedding_input_version(n, paths, settings, hashes) for n in names}


def _encoder_input_versions(names: list[str], paths: LakePaths, settings: ExperimentSettings,
                            hashes: ContentHashes) -> dict[str, str]:
    audio = audio_version(paths, hashes)
    return {n: encoder_input_version(n, settings, audio) for n in names}


def _per_encoder(key: dg.AssetKey, partitions: dg.DynamicPartitionsDefinition, versions_of, description: str):
    """An observable source with a version per partition: ``versions_of(names, paths, settings, hashes)``."""

    @dg.observable_source_asset(key=key, group_name="inputs", partitions_def=partitions, description=description)
    def _source(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.DataVersionsByPartition:
        paths, settings = lake.paths(), lake.settings()
        hashes = _hashes(paths)
        versions = versions_of(context.instance.get_dynamic_partitions(partitions.name), paths, settings, hashes)
        hashes.save()
        return dg.DataVersionsByPartition(versions)

    return _source


encoder_inputs = _per_encoder(ENCODER_INPUTS, AUDIO_ENCODER_SET, _encoder_input_versions,
                              "Per audio encoder, what it reads besides the catalogue: audio content, weights and "
                              "encode settings.")
embedding_inputs = _per_encoder(EMBEDDING_INPUTS, ENCODERS, embedding_input_versions,
                                "Per encoder, what its embeddings partition reads besides the catalogue and the "
                                "encoders' vectors: a user's .npy, a control's seed, a hybrid's settings.")


def settings_version(key: dg.AssetKey, settings: ExperimentSettings) -> str:
    """The version of an unpartitioned settings source (the tables also read ``encode.shuffled_base``)."""
    version = settings.fingerprint(*UNPARTITIONED_SETTINGS[key])
    return combine(version, settings.encode.shuffled_base) if key == SETTINGS_TABLES else version


def model_settings_version(settings: ExperimentSettings, recommender: str) -> str:
    own = (recommender,) if recommender in type(settings).model_fields else ()
    version = combine(settings.fingerprint(*MODEL_SETTINGS, *own), settings.encode.standardize)
    # a revised paper_code procedure makes only that preset's cells stale (registry.paper_code_revision)
    entry = RECOMMENDERS_REGISTRY.get(recommender)
    revision = entry.paper_code_revision if entry is not None and settings.preset == "paper_code" else 0
    return combine(version, "paper_code_revision", revision) if revision else version


def _per_recommender(key: dg.AssetKey, partitions: dg.DynamicPartitionsDefinition, description: str):
    @dg.observable_source_asset(key=key, group_name="inputs", partitions_def=partitions, description=description)
    def _settings(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.DataVersionsByPartition:
        settings = lake.settings()
        names = context.instance.get_dynamic_partitions(partitions.name)
        return dg.DataVersionsByPartition({r: model_settings_version(settings, r) for r in names})

    return _settings


settings_model = _per_recommender(SETTINGS_MODEL, RECOMMENDERS,
                                  "Per recommender: preset, seed(s), its own section, encode.standardize.")
settings_reference = _per_recommender(SETTINGS_REFERENCE, REFERENCES,
                                      "Per reference recommender: preset, seed(s), its own section.")


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec(key, group_name="inputs", description=f"Settings {', '.join(fields)} of experiment.yaml")
           for key, fields in UNPARTITIONED_SETTINGS.items()],
)
def settings_sections(lake: LakeResource):
    settings = lake.settings()
    for key in UNPARTITIONED_SETTINGS:
        yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(settings_version(key, settings)))


SOURCES = [raw_log, raw_audio, encoder_inputs, embedding_inputs, settings_model, settings_reference, settings_sections]


def input_observations(lake: LakeResource, instance: dg.DagsterInstance) -> list[dg.AssetObservation]:
    """One observation (with its data version) per source and partition: what the observable sources above
    report, computed in one pass for :func:`observe_inputs_sensor` and ``audiorec demo`` (no run needed)."""
    paths, settings = lake.paths(), lake.resolve_settings()
    hashes = _hashes(paths)
    audio = audio_version(paths, hashes)

    def observation(key: dg.AssetKey, version: str, partition: str | None = None) -> dg.AssetObservation:
        return dg.AssetObservation(asset_key=key, partition=partition, tags={DATA_VERSION_TAG: version})

    found = [observation(RAW_LOG, log_version(paths, hashes)), observation(RAW_AUDIO, audio)]
    found += [observation(key, settings_version(key, settings)) for key in UNPARTITIONED_SETTINGS]
    found += [observation(ENCODER_INPUTS, encoder_input_version(name, settings, audio), name)
              for name in instance.get_dynamic_partitions(AUDIO_ENCODER_SET.name)]
    found += [observation(EMBEDDING_INPUTS, version, name) for name, version in embedding_input_versions(
        instance.get_dynamic_partitions(ENCODERS.name), paths, settings, hashes).items()]
    for key, partitions in ((SETTINGS_MODEL, RECOMMENDERS), (SETTINGS_REFERENCE, REFERENCES)):
        found += [observation(key, model_settings_version(settings, r), r)
                  for r in instance.get_dynamic_partitions(partitions.name)]
    hashes.save()
    return found


def changed_observations(instance: dg.DagsterInstance, observations: list[dg.AssetObservation]
                         ) -> list[dg.AssetObservation]:
    """The observations whose data version differs from the latest recorded one (so nothing is repeated)."""
    changed = []
    for obs in observations:
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=obs.asset_key,
                                  asset_partitions=None if obs.partition is None else [obs.partition]), limit=1)
        last = records.records[0].event_log_entry.asset_observation if records.records else None
        if last is None or last.tags.get(DATA_VERSION_TAG) != obs.tags[DATA_VERSION_TAG]:
            changed.append(obs)
    return changed
