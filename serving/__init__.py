"""Moodtape's engine as replicas on a Ray Serve cluster: the page and the API stay the same.

``python -m serving --replicas 2`` deploys the replicas (``deployment.py``) with the settings in
``config.yaml`` and returns when they are ready; ``MOODTAPE_BACKEND=ray python app.py`` then sends every
track to them through ``generation.model.remote.RemoteEngine``.
"""
