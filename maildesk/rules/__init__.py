"""Routing rules: compiled from rules.yaml, evaluated per new ticket."""
