"""Attacks on the remediation promises, from the adversarial review of issue 10.

Each module tells, in its docstring, the break as the review found it on the first cut of the
per-request remediation; its tests state the promise and pass now that it holds. They run
against real PostgreSQL and Temporal like the rest of tests/e2e.
"""
