"""Data sets the study can run on without real listeners (no Dagster): each writes a ``raw/`` folder in a layout
the ingest reads (:mod:`audiorec_assets.data.sources`) and flags a generated log synthetic (:mod:`.marker`).

* :mod:`.demo` — ``audiorec demo``'s synthetic catalogue (:mod:`.demo_catalogue`, audio from :mod:`.demo_audio`)
  and its listeners (:mod:`.demo_listens`);
* :mod:`.classical` — ``audiorec demo --dataset classical``: excerpts of the music21 corpus rendered with FluidSynth;
* :mod:`.mock_logs` — ``audiorec mock-logs``: a listening log for a catalogue that has none;
* :mod:`.demo_settings` — the settings each demo runs with (``demo_experiment.yaml``, ``classical_experiment.yaml``).
"""
