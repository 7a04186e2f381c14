// One Miniflare for every call: node miniflare_calls.mjs CONNECTION_STRING CALLS.json
// CALLS.json maps names to worker.js request bodies; prints {name: the Worker's answer}.
import { readFile } from "node:fs/promises";
import { Miniflare } from "miniflare";

const [connection, callsFile] = process.argv.slice(2);
const calls = JSON.parse(await readFile(callsFile, "utf8"));
const mf = new Miniflare({
  modules: true,
  scriptPath: new URL("./worker.js", import.meta.url).pathname,
  compatibilityDate: "2025-06-01",
  ai: { binding: "AI", remoteProxyConnectionString: new URL(connection) },
});
const seen = {};
try {
  for (const [name, call] of Object.entries(calls)) {
    const response = await mf.dispatchFetch("http://worker/", {
      method: "POST",
      body: JSON.stringify(call),
    });
    const text = await response.text();
    try {
      seen[name] = { status: response.status, ...JSON.parse(text) };
    } catch {
      seen[name] = { status: response.status, ok: false, text };
    }
  }
} finally {
  await mf.dispose();
}
process.stdout.write(JSON.stringify(seen));
