"""THINGS-size synthetic data (:mod:`.data`) and the study's analyses timed on it (:mod:`.study`).

Tools for benchmarks and scale tests (``figureground synth``, ``bench/bench_scale.py``); no
stage of the pipeline imports them.
"""
