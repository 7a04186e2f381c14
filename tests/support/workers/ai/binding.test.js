// env.AI inside the Workers runtime (vitest-pool-workers), against workers-ai-local.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const QWQ = "@cf/qwen/qwq-32b";
const R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b";
const SHORT = { max_tokens: 8, seed: 1 };

describe("env.AI against workers-ai-local", () => {
  it("runs a prompt", async () => {
    const result = await env.AI.run(QWQ, { prompt: "Hello", ...SHORT });
    expect(typeof result.response).toBe("string");
    expect(result.usage.completion_tokens).toBeGreaterThan(0);
    expect(env.AI.lastRequestId).toMatch(/^[0-9a-f]{32}$/);
  });

  it("runs messages", async () => {
    const messages = [{ role: "user", content: "Hello" }];
    const result = await env.AI.run(R1, { messages, ...SHORT });
    expect(typeof result.response).toBe("string");
  });

  it("streams", async () => {
    const stream = await env.AI.run(QWQ, { prompt: "Hello", stream: true, ...SHORT });
    expect(stream).toBeInstanceOf(ReadableStream);
    const text = await new Response(stream).text();
    expect(text.startsWith("data: {")).toBe(true);
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("answers JSON mode with the JSON value", async () => {
    const schema = {
      type: "object",
      properties: { color: { enum: ["red", "green", "blue"] } },
      required: ["color"],
      additionalProperties: false,
    };
    const result = await env.AI.run(QWQ, { prompt: "A color", guided_json: schema, max_tokens: 64 });
    expect(["red", "green", "blue"]).toContain(result.response.color);
  });

  it("throws AiError 5006 on bad input", async () => {
    const error = await env.AI.run(QWQ, { prompt: "Hello", temperature: 9 }).catch((e) => e);
    expect(error.name).toBe("AiError");
    expect(error.message).toMatch(/^5006: Bad input: Error: .*temperature/);
  });

  it("lists the served models", async () => {
    const models = await env.AI.models();
    expect(models.map((model) => model.name).sort()).toEqual([R1, QWQ]);
  });
});
