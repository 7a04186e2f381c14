// A Worker that makes one `env.AI` call per request and answers what it saw, as JSON.
// Request body:
//   {"model", "inputs", "options"}        env.AI.run(model, inputs, options)
//   {"models": params}                     env.AI.models(params)
//   {"gatewayLog": [gateway, logId]}       env.AI.gateway(gateway).getLog(logId)
// Answer: {"ok": true, "type", "value", "lastRequestId"}, type "object" or "stream" for run();
// or, when the call threw, {"ok": false, "name", "message", "text": String(error), ...}.
export default {
  async fetch(request, env) {
    const call = await request.json();
    try {
      if (call.models !== undefined) {
        return Response.json({ ok: true, type: "models", value: await env.AI.models(call.models) });
      }
      if (call.gatewayLog !== undefined) {
        const [gateway, logId] = call.gatewayLog;
        const log = await env.AI.gateway(gateway).getLog(logId);
        return Response.json({ ok: true, type: "log", value: log });
      }
      const out = await env.AI.run(call.model, call.inputs, call.options ?? {});
      const seen = { ok: true, lastRequestId: env.AI.lastRequestId };
      if (out instanceof ReadableStream) {
        return Response.json({ ...seen, type: "stream", value: await new Response(out).text() });
      }
      return Response.json({ ...seen, type: "object", value: out });
    } catch (error) {
      return Response.json({
        ok: false,
        name: error.name,
        message: error.message,
        text: String(error),
        lastRequestId: env.AI.lastRequestId,
        httpStatus: env.AI.lastRequestHttpStatusCode,
        internalCode: env.AI.lastRequestInternalStatusCode,
      });
    }
  },
};
