"""`workers-ai-local wrangler-dev`: a developer's own `wrangler dev` sends `env.AI` here, offline.

wrangler always runs the AI binding remotely: it asks Cloudflare's API for a preview session,
uploads a proxy Worker and sends each `env.AI.run` to it at `https://<preview host>:443/`.
This package stands in for both (docs/wrangler-dev.md, "How it works"): a fake API
and preview edge on https://127.0.0.1:443 (edge.py) that forwards the AI binding's calls to
the server's binding endpoint, and runs the developer's command with an environment that
points wrangler there (run.py). See docs/wrangler-dev.md.
"""
