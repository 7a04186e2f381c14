// vitest-pool-workers with wrangler.toml's AI binding served by workers-ai-local:
// `remoteBindings: false` keeps the pool from opening a Cloudflare session for it, and
// `miniflare.ai` points the binding at the server (AI_CONNECTION_STRING, set by the test).
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      remoteBindings: false,
      miniflare: {
        ai: {
          binding: "AI",
          remoteProxyConnectionString: new URL(process.env.AI_CONNECTION_STRING),
        },
      },
    }),
  ],
  test: { include: ["binding.test.js"], testTimeout: 120_000 },
});
