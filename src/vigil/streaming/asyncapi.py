"""The AsyncAPI 3 document of Vigil's broker interface, generated from the message models."""

from __future__ import annotations

from typing import Any

from vigil.config import BrokerConfig
from vigil.streaming.messages import (
    DECISION_BATCH_TYPE,
    DECISION_TYPE,
    SCHEMA_VERSION,
    TRANSACTION_BATCH_TYPE,
    TRANSACTION_TYPE,
    DecisionBatch,
    DecisionMessage,
    LabelMessage,
    TransactionBatch,
    TransactionMessage,
)
from vigil.streaming.outbox import BATCH_ITEM_HEADER
from vigil.streaming.partitions import members_exchange, partition_exchange, partition_queue
from vigil.streaming.topology import REASON_HEADER, dead_letter_queue


def _message(model: type[Any], summary: str, amqp_type: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": model.__name__,
        "summary": summary,
        "contentType": "application/json",
        "payload": model.model_json_schema(),
    }
    if amqp_type is not None:
        message["bindings"] = {"amqp": {"messageType": amqp_type, "bindingVersion": "0.3.0"}}
    return message


def build_asyncapi(config: BrokerConfig) -> dict[str, Any]:
    """The AsyncAPI document for the configured queue and exchange names."""
    tx, labels, decisions = (
        config.transactions_queue,
        config.labels_queue,
        config.decisions_exchange,
    )
    dead_letter = {
        "name": "DeadLetter",
        "summary": f"The original body, unchanged; header {REASON_HEADER} says why.",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                REASON_HEADER: {"type": "string"},
                "x-vigil-queue": {"type": "string"},
                BATCH_ITEM_HEADER: {
                    "type": "integer",
                    "description": "Set when one item of a TransactionBatch was rejected: its "
                    "index; the body is that item alone.",
                },
            },
        },
    }
    heartbeat = {
        "name": "Heartbeat",
        "summary": "A partitioned worker is alive (or leaving now).",
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["id", "leaving"],
            "properties": {"id": {"type": "string"}, "leaving": {"type": "boolean"}},
        },
    }
    channels = {
        "transactions": {
            "address": tx,
            "description": "Quorum queue of transactions to score.",
            "messages": {
                "transaction": _message(
                    TransactionMessage,
                    "A transaction to score (AMQP type optional).",
                    TRANSACTION_TYPE,
                ),
                "transactionBatch": _message(
                    TransactionBatch,
                    "Many transactions; their decisions come back as DecisionBatch messages.",
                    TRANSACTION_BATCH_TYPE,
                ),
            },
        },
        "partitionedTransactions": {
            "address": f"{partition_exchange(config)}/{{partition}}",
            "description": (
                f"With broker.partitions = N > 0 (now {config.partitions}): direct exchange "
                f"'{partition_exchange(config)}', routing key the partition "
                "CRC-32(customer_id as 8 big-endian bytes) mod N, bound to quorum queues "
                f"'{partition_queue(config, 0)}' .. '{partition_queue(config, 1)}' .. "
                "(one a partition) with single active consumer, "
                "so a card's transactions stay in order (ADR 0015). Batches hold one "
                "partition's transactions."
            ),
            "parameters": {"partition": {"description": "0 .. N-1"}},
            "messages": {
                "transaction": {"$ref": "#/channels/transactions/messages/transaction"},
                "transactionBatch": {"$ref": "#/channels/transactions/messages/transactionBatch"},
            },
        },
        "workerHeartbeats": {
            "address": members_exchange(config),
            "description": "Fanout exchange of partitioned workers' membership heartbeats "
            f"(every broker.heartbeat_s = {config.heartbeat_s} s); the partitions are dealt "
            "round robin over the live members.",
            "messages": {"heartbeat": heartbeat},
        },
        "decisions": {
            "address": f"{decisions}/decision.{{label}}",
            "description": f"Topic exchange '{decisions}'; routing key decision.fraud|legit.",
            "parameters": {"label": {"enum": ["fraud", "legit"]}},
            "messages": {
                "decision": _message(
                    DecisionMessage,
                    "The decision for a transaction sent alone.",
                    DECISION_TYPE,
                ),
                "decisionBatch": _message(
                    DecisionBatch,
                    "One micro-batch's decisions with this label, for batched transactions.",
                    DECISION_BATCH_TYPE,
                ),
            },
        },
        "labels": {
            "address": labels,
            "description": "Quorum queue of fraud verdicts arriving after the fact.",
            "messages": {"label": _message(LabelMessage, "A fraud verdict.")},
        },
        "transactionsDeadLetters": {
            "address": dead_letter_queue(tx),
            "messages": {"deadLetter": dead_letter},
        },
        "labelsDeadLetters": {
            "address": dead_letter_queue(labels),
            "messages": {"deadLetter": dead_letter},
        },
    }

    def op(action: str, channel: str, summary: str) -> dict[str, Any]:
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Vigil stream interface",
            "version": str(SCHEMA_VERSION),
            "description": "Transactions in, decisions out, labels fed back (RabbitMQ).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": {
            "scoreTransactions": op("receive", "transactions", "The worker scores these."),
            "scorePartitions": op(
                "receive", "partitionedTransactions", "One active worker per partition."
            ),
            "exchangeHeartbeats": op("send", "workerHeartbeats", "Each worker, every beat."),
            "publishDecisions": op("send", "decisions", "Published after commit, before ack."),
            "receiveLabels": op("receive", "labels", "Labels table and online state."),
            "deadLetterTransactions": op("send", "transactionsDeadLetters", "Poison messages."),
            "deadLetterLabels": op("send", "labelsDeadLetters", "Poison labels."),
        },
    }
