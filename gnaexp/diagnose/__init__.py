"""From outputs to a verdict: the run verdicts (``verdicts``), the diagnosis ladder, the family of mistakes
(``hypotheses``), per-layer error, what a measurement was (``measurement``) and the one status per run
(``status``).
"""
