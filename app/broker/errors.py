"""What a broker raises: in a module of its own, so every part of the broker can raise it."""


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached: publish or subscribe did not happen."""
