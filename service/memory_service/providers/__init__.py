"""Providers: the embedders (in-process ONNX MiniLM, Ollama) and Ollama's LLM, behind mem0's interfaces."""
