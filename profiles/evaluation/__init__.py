"""Offline evaluation of the profiles on recorded data (no Kafka, no collectors)."""
