"""HTTP server speaking Cloudflare Workers AI's REST API."""
