"""The AsyncAPI 3 document of Vigil's broker interface, generated from the message models."""

from __future__ import annotations

from typing import Any

from vigil.config import BrokerConfig
from vigil.streaming.messages import (
    SCHEMA_VERSION,
    DecisionMessage,
    LabelMessage,
    TransactionMessage,
)
from vigil.streaming.topology import REASON_HEADER, dead_letter_queue


def _message(model: type[Any], summary: str) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "summary": summary,
        "contentType": "application/json",
        "payload": model.model_json_schema(),
    }


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
            },
        },
    }
    channels = {
        "transactions": {
            "address": tx,
            "description": "Quorum queue of transactions to score.",
            "messages": {"transaction": _message(TransactionMessage, "A transaction to score.")},
        },
        "decisions": {
            "address": f"{decisions}/decision.{{label}}",
            "description": f"Topic exchange '{decisions}'; routing key decision.fraud|legit.",
            "parameters": {"label": {"enum": ["fraud", "legit"]}},
            "messages": {"decision": _message(DecisionMessage, "One transaction's decision.")},
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
            "publishDecisions": op("send", "decisions", "Published after commit, before ack."),
            "receiveLabels": op("receive", "labels", "Labels table and online state."),
            "deadLetterTransactions": op("send", "transactionsDeadLetters", "Poison messages."),
            "deadLetterLabels": op("send", "labelsDeadLetters", "Poison labels."),
        },
    }
