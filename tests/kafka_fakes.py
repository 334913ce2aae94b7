"""Stand-ins for what confluent-kafka's Consumer hands back, for CLI tests without a broker."""

from __future__ import annotations


class FakeMessage:
    """A consumed record: the accessors confluent_kafka.Message offers."""

    def __init__(self, partition: int, offset: int, value: bytes, key: bytes | None = None) -> None:
        self._partition, self._offset, self._value, self._key = partition, offset, value, key

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, 0  # TIMESTAMP_CREATE_TIME, 0 ms
