"""Backups of an environment (archive.py), their manifests and the buckets' archives."""
