# Inference with Ollama (docs/inference.md): the integration suite runs against the Ollama-speaking
# test server (tests/support/ollama_server.py); with OLLAMA_TEST_URL (or OLLAMA_BASE_URL) set, it
# runs against that real Ollama instead, behind the server's fault-injecting proxy.
OLLAMA_FAKE_PORT ?= 11435

.PHONY: test-inference
test-inference: install ## Inference and async-job tests (fake Ollama; OLLAMA_TEST_URL=http://host:11434 for a real one)
	$(BIN)/pytest -q tests/integration/test_inference.py tests/integration/test_inference_outages.py \
	  tests/integration/test_inference_jobs.py tests/integration/test_inference_startup.py

.PHONY: ollama-fake
ollama-fake: install ## Serve the Ollama-speaking test server on 127.0.0.1:OLLAMA_FAKE_PORT (11435), for manual tries
	$(BIN)/python -m tests.support.ollama_server --port $(OLLAMA_FAKE_PORT)
