"""Plain data shapes shared by every layer: memory records, keys and principals, jobs, entities.

They carry no behaviour that needs a backend, so storage can return them and the API can show
them without either importing the other.
"""
