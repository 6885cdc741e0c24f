"""The ground floor: rules and helpers every layer may use (ids, time format, call context).

Nothing here imports any other part of the service.
"""
