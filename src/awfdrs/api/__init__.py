"""The HTTP edge: authentication, limits and format adapters in front of the one ingest core.

Importing this package builds nothing; :func:`awfdrs.api.app.create_app` does.
"""
