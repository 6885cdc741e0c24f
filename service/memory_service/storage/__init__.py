"""Storage adapters: Postgres (pool, schema migrations, memory table, vector store, history, outbox,
keys, jobs) and the Neo4j graph store. Storage knows rows and models, never HTTP or the domain."""
