"""The relay's producer partitions exactly as aiokafka's default partitioner does."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner

from shared.runtime.kafka import MemoPartitioner, make_producer
from shared.runtime.settings import KafkaSettings


def _keys() -> list[bytes]:
    generator = random.Random(16)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"\xff" * 7]
    keys += [str(uuid.UUID(int=generator.getrandbits(128))).encode() for _ in range(300)]
    keys += [generator.randbytes(generator.randrange(1, 64)) for _ in range(300)]
    return keys


def test_same_partition_as_the_default_for_many_keys_and_partition_counts() -> None:
    default = DefaultPartitioner()
    memo = MemoPartitioner(maxsize=64)  # smaller than the keys: evictions are exercised
    for partitions in (1, 2, 3, 6, 7, 12, 32, 100):
        all_partitions = list(range(partitions))
        available = all_partitions[::2]
        for _ in range(2):  # the second pass is answered from the cache
            for key in _keys():
                expected = default(key, all_partitions, available)
                assert memo(key, all_partitions, available) == expected, (key, partitions)


def test_the_cache_is_keyed_on_the_partition_count_too() -> None:
    memo = MemoPartitioner()
    key = b"recall-1"
    for partitions in (3, 5, 3, 8, 5):
        expected = DefaultPartitioner()(key, list(range(partitions)), [])
        assert memo(key, list(range(partitions)), []) == expected


def test_a_none_key_goes_to_a_random_available_partition_as_in_aiokafka() -> None:
    memo = MemoPartitioner()
    chosen = {memo(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
    assert {memo(None, [0, 1, 2], []) for _ in range(200)} == {0, 1, 2}


async def test_the_relay_producer_uses_it() -> None:
    producer = make_producer(KafkaSettings(), service="test")  # made, never started
    try:
        assert isinstance(producer._partitioner, MemoPartitioner)
    finally:
        await producer.stop()
