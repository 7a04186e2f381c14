"""Inference engines behind one small protocol.

Only `engine.vllm.engine` imports vLLM, and only when an engine is started, so everything else
(HTTP layer, unit tests) loads without it.
"""
