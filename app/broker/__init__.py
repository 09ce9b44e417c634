"""Carries events between processes and keeps each channel's recent history for resume."""
from app.broker.base import Broker, BrokerUnavailable, Replay
from app.broker.hub import Inbox

__all__ = ["Broker", "BrokerUnavailable", "Inbox", "Replay"]
