"""The Workers AI binding (`env.AI`) of Miniflare, vitest-pool-workers and `wrangler dev`."""
