# Local Kafka broker targets, included by the root Makefile.
# python3 from PATH on purpose: the launcher is stdlib-only so these work before `make venv`.
KAFKA_LOCAL := python3 deploy/local/kafka_local.py

.PHONY: kafka-jars kafka-up kafka-down kafka-status kafka-wait kafka-reset kafka-logs

## Fetch the Kafka broker jars from Maven Central into .cache/kafka/ (once; `up` does it too).
kafka-jars:
	@$(KAFKA_LOCAL) jars

## Start the local broker on 127.0.0.1:$${CADENCE_KAFKA_PORT:-9092}; no-op if already running.
kafka-up:
	@$(KAFKA_LOCAL) up

## Stop the broker that kafka-up started (data is kept).
kafka-down:
	@$(KAFKA_LOCAL) down

## Show pid and whether the broker answers metadata requests.
kafka-status:
	@$(KAFKA_LOCAL) status

## Block until a broker serves metadata on the configured port (any broker, e.g. docker compose).
kafka-wait:
	@$(KAFKA_LOCAL) wait

## Stop the broker and delete its topics, offsets and logs.
kafka-reset:
	@$(KAFKA_LOCAL) down --purge

## Follow the broker's log (where the launcher puts it: CADENCE_KAFKA_CACHE, CADENCE_KAFKA_NAME).
kafka-logs:
	@tail -n 50 -F "$${CADENCE_KAFKA_CACHE:-.cache/kafka}/$${CADENCE_KAFKA_NAME:-local}/logs/server.log"
