# Schema-driven fuzzing (tests/fuzz: schemathesis strategies over the served OpenAPI document, with a
# user key, an admin key and cross-tenant probes). `make test` runs it bounded (FUZZ_EXAMPLES=10 per
# operation, deterministic); this runs it longer with random data: `make fuzz FUZZ_EXAMPLES=1000`.
FUZZ_EXAMPLES ?= 300

.PHONY: fuzz
fuzz: install ## Fuzz every operation longer (FUZZ_EXAMPLES per operation, random data); prints the counts
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/pytest -q -p no:cacheprovider tests/fuzz
