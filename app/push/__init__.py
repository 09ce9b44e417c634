"""Web Push (RFC 8030, 8291, 8292): the VAPID keys, browsers' subscriptions, and a background
sender that pushes a notification to a user's browsers when none of their pages is open."""
