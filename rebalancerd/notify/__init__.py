"""Notifications: events recorded in a transactional outbox, delivered as signed webhooks."""
