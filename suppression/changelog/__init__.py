"""The change log: one Redis stream of list changes that every replica follows.

- :mod:`~suppression.changelog.streaminfo`: where the stream stands, and gaps.
- :mod:`~suppression.changelog.planning`: stream entries to list changes (pure).
- :mod:`~suppression.changelog.follower`: the thread that applies the stream.

Nothing is imported here, so that a module needing only planning loads no Redis client.
"""
