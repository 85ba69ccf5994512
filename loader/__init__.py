"""The ingestion side: registry and CSV readers, publishing to the change log, compaction.

The ``suppression-loader`` console script is :func:`loader.cli.main`.
"""
