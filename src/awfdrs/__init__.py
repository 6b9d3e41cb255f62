"""awfdrs: detect failures in tenants' business workflows and remediate them safely."""

__version__ = "0.1.0"
