"""Helpers with no knowledge of plans or processes: durable file writes and bounded reads, time formats, log
following, small text helpers. Imports nothing else of coord.
"""
