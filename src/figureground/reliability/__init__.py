"""Fault and bad-input trials run through the real command line, summarised as a table.

``python -m figureground.reliability --out docs/reliability.md`` (``make reliability``) runs
every trial of :data:`figureground.reliability.trials.TRIALS` in subprocesses and writes the
table; the test suite runs the same trials with fewer repetitions.
"""
