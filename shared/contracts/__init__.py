"""The external contracts: CloudEvents envelope, event payloads, topics.

Each has one home, imported from there: `envelope` (the CloudEvents envelope, how a consumer
accepts or rejects what it reads), `events` (every event payload), `topics` (the topics, their
keys and dead-letter topics) and `types` (the value types the payloads share)."""
