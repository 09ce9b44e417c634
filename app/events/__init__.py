"""The event model: what happened, which channels hear of it, and the bytes that carry it.

Nothing here imports Flask or does I/O (Flask's own sans-IO rule), so the broker, the services
and every transport share one definition and tests need no app.
"""
