"""Plumbing written once for every service: settings, logging, database, inbox/outbox,
batch consumer, dead letters, HTTP, lifecycle."""
