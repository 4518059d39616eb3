"""Peers the product is measured against, started as real server processes like the app."""
