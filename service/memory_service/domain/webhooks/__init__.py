"""Webhooks: endpoints per tenant, the events they receive, signing, and where they may point."""
