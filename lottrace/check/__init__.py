"""`lottrace check`: a consistency audit of the four projections, their outboxes and the
consumer groups.

- `compare`: the pure rules (frozen dataclasses in, a list of `Difference` out);
- `reads`: every SQL statement and Kafka read of the audit;
- `audit`: waits for in-flight work (with a deadline), reads, and compares;
- `report`: the rich and JSON renderings the command prints.
"""
