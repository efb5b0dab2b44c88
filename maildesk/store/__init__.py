"""Durable storage of what arrives: raw bytes and arrivals, before anything else happens."""
