"""Local infrastructure for `make run`, `awfdrs up` and the tests; not for production."""
