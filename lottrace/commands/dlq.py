"""`lottrace dlq`: dead letters, the records a consumer refused, listed and sent again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from lottrace.client import (
    DeadLetter,
    NotReplayable,
    ReplayMessage,
    dead_letter_topic_of,
    distinct_records,
    kafka_settings,
    publish_replays,
    read_dead_letters,
    replay_message,
)
from lottrace.commands.groups import add_group
from lottrace.commands.options import DEFAULT_BOOTSTRAP, BootstrapOption
from lottrace.commands.output import (
    FormatOption,
    OutputFormat,
    fail,
    run_against_platform,
    stdout,
    write_json,
)
from lottrace.render import counted, dead_letters_table, key_text
from shared.contracts.topics import TOPICS
from shared.runtime.settings import KafkaSettings


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "dlq",
        "Dead letters: records a consumer refused, kept in `<topic>.dlq` with the reason.",
        list=dlq_list,
        replay=dlq_replay,
    )


def _topics(topic: Sequence[str] | None) -> list[str]:
    return (
        [dead_letter_topic_of(name) for name in topic] if topic else [spec.dlq for spec in TOPICS]
    )


def dlq_list(
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            "-t",
            help="A topic (or its .dlq); repeat for several. Default: every topic of the contract.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N entries.")] = 50,
    output: FormatOption = OutputFormat.TABLE,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """What the consumers refused, and why.

    Each entry: the error type and message, the source topic, partition and offset, the
    consumer group that refused it, the key. Reads without joining a consumer group.
    """
    topics = _topics(topic)
    letters, missing = run_against_platform(read_dead_letters(kafka_settings(bootstrap), topics))
    letters.sort(
        key=lambda letter: (letter.timestamp_ms, letter.topic, letter.partition, letter.offset)
    )
    shown = letters[-limit:]
    if output is OutputFormat.JSON:
        write_json([dead_letter_document(letter) for letter in shown])
        return
    console = stdout()
    for name in missing:
        console.print(f"[yellow]{escape(name)} does not exist[/]")
    if not letters:
        console.print(
            f"no dead letters in {', '.join(t for t in topics if t not in missing) or '–'}"
        )
        return
    table = dead_letters_table(shown, title="Dead letters")
    table.caption = (
        counted(len(letters), "entry", "entries")
        + (f", the newest {len(shown)} shown (--limit)" if len(shown) < len(letters) else "")
        + ". Replay one after the fix: lottrace dlq replay --topic T --partition P --offset N"
    )
    console.print(table)


def dead_letter_document(letter: DeadLetter) -> dict[str, Any]:
    return {
        "entry": {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
        "timestamp": letter.written_at.isoformat(),
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "source": {
            "topic": letter.source_topic,
            "partition": letter.source_partition,
            "offset": letter.source_offset,
        },
        "consumer_group": letter.consumer_group,
        "key": None if letter.key is None else key_text(letter.key),
        "headers": {name: key_text(raw) for name, raw in letter.headers},
        "value": key_text(letter.value),
    }


def dlq_replay(
    topic: Annotated[
        str,
        typer.Option(
            "--topic", "-t", help="The topic (or its .dlq) whose dead letters to send again."
        ),
    ],
    offset: Annotated[
        int | None,
        typer.Option(
            min=0, help="The entry's offset in the dead-letter topic (`dlq list`, entry P:N)."
        ),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option(min=0, help="The entry's partition; needed when the offset is in several."),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every entry of the topic's DLQ, each record once.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Send dead letters back to their source topic, once what refused them is fixed.

    The original value, key and headers go to the partition they came from. Consumers that had
    applied the event skip it (inbox); one that refuses it again dead-letters it again.
    """
    if (offset is None) == (not replay_all):
        fail("give --offset N (one entry) or --all", code=2)
    if partition is not None and offset is None:
        fail("--partition goes with --offset", code=2)
    dlq_topic = dead_letter_topic_of(topic)
    messages, refused = run_against_platform(
        _replay(kafka_settings(bootstrap), dlq_topic, offset, partition, dry_run=dry_run)
    )
    _print_replayed(messages, refused, dlq_topic, dry_run=dry_run)
    if refused:
        raise typer.Exit(1)


async def _replay(
    settings: KafkaSettings,
    dlq_topic: str,
    offset: int | None,
    partition: int | None,
    *,
    dry_run: bool,
) -> tuple[list[ReplayMessage], list[str]]:
    """The records sent again (or, dry, that would be), and why the others cannot be."""
    letters, missing = await read_dead_letters(settings, [dlq_topic])
    if missing:
        fail(f"{dlq_topic} does not exist")
    chosen = select_dead_letters(letters, offset=offset, partition=partition, dlq_topic=dlq_topic)
    messages: list[ReplayMessage] = []
    refused: list[str] = []
    for letter in chosen:
        try:
            messages.append(replay_message(letter))
        except NotReplayable as error:
            refused.append(str(error))
    if messages and not dry_run:
        await publish_replays(settings, messages)
    return messages, refused


def _print_replayed(
    messages: Sequence[ReplayMessage], refused: Sequence[str], dlq_topic: str, *, dry_run: bool
) -> None:
    console = stdout()
    if messages:
        table = dead_letters_table(
            [m.dead_letter for m in messages], title="Replayed" if not dry_run else "Would replay"
        )
        table.caption = (
            "dry run: nothing sent"
            if dry_run
            else f"{counted(len(messages), 'record')} sent to"
            f" {', '.join(sorted({m.topic for m in messages}))}"
        )
        console.print(table)
    elif not refused:
        console.print(f"nothing to replay in {dlq_topic}")
    for reason in refused:
        Console(stderr=True).print(f"[yellow]not replayed:[/] {escape(reason)}")


def select_dead_letters(
    letters: Sequence[DeadLetter], *, offset: int | None, partition: int | None, dlq_topic: str
) -> list[DeadLetter]:
    """The entries `dlq replay` sends: one by offset (and partition), or each record once."""
    if offset is None:
        return distinct_records(letters)
    matching = [
        letter
        for letter in letters
        if letter.offset == offset and (partition is None or letter.partition == partition)
    ]
    if not matching:
        where = f" partition {partition}" if partition is not None else ""
        fail(f"{dlq_topic} has no entry at{where} offset {offset}: see `lottrace dlq list`")
    if len(matching) > 1:
        partitions = ", ".join(str(letter.partition) for letter in matching)
        fail(
            f"offset {offset} is in partitions {partitions} of {dlq_topic}: give --partition",
            code=2,
        )
    return matching
