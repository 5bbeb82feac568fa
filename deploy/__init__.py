"""Deployment: ``haproxy.cfg`` in front of several hubs and ``cluster.py`` (``make cluster``)."""
