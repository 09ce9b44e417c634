"""Carries events between processes and keeps each channel's recent history for resume.

A broker publishes, subscribes local subscribers (:mod:`app.broker.hub`) and reads history;
per-user stream quotas, sign-outs and socket writes live with the streams and with auth.
"""
from app.broker.base import Broker, BrokerUnavailable, Replay

__all__ = ["Broker", "BrokerUnavailable", "Replay"]
