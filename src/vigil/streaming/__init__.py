"""Streaming: RabbitMQ topology, typed messages, the stream worker and the replay producer."""

from vigil.streaming.asyncapi import build_asyncapi
from vigil.streaming.messages import DecisionMessage, LabelMessage, TransactionMessage
from vigil.streaming.replay import BrokerSink, InProcessSink, ReplaySummary, replay
from vigil.streaming.topology import dead_letter_queue, declare_topology
from vigil.streaming.worker import StreamWorker

__all__ = [
    "BrokerSink",
    "DecisionMessage",
    "InProcessSink",
    "LabelMessage",
    "ReplaySummary",
    "StreamWorker",
    "TransactionMessage",
    "build_asyncapi",
    "dead_letter_queue",
    "declare_topology",
    "replay",
]
