"""Analyzers turn an incident's facts into a decision; the one to use is a setting."""

from awfdrs.analysis.base import Analysis, Analyzer, IncidentFacts, load_analyzer

__all__ = ["Analysis", "Analyzer", "IncidentFacts", "load_analyzer"]
