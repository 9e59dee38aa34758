"""The `lottrace` command line.

Platform: `dev` starts everything locally (what `make run` does), `demo` tells the seed story
against it. People and scripts: `trace` follows a lot back to its suppliers and forward to its
customers, `recall` issues and follows recalls, `lots expiring` lists what expires soon, `scan`
reads a GS1 barcode. Operators: `dlq list` and `dlq replay` for dead letters, `hash-key` for
API keys, `contracts` for the AsyncAPI document, `check` to audit the services against each
other, `backup` and `restore` for every service database.

Commands that call the services take their addresses from `LOTTRACE_<SERVICE>_URL` (default:
the ports `make run` uses) and the key from `LOTTRACE_API_KEY`; Kafka commands take the
brokers from `KAFKA_BOOTSTRAP_SERVERS` and TLS/SASL from the `KAFKA_*` settings the services
read. Exit status: 0 done, 1 the platform refused or could not be reached, 2 bad input.

The commands live in `lottrace.commands`, a module per topic; what they print is built by
`lottrace.render`. This module is the entry point of the `lottrace` console script.
"""

from __future__ import annotations

from lottrace.commands import app, drill

drill.register(app)
__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
