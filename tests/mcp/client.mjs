// client.mjs - drive ctxgate's MCP server with the official MCP TypeScript
// SDK v1 client (@modelcontextprotocol/sdk, pinned in tests/package.json):
// list the tools, search, fetch the first result, and fetch an id given on
// the command line. Prints one JSON object on stdout, with the protocol
// version the client asked for in initialize and the one the server agreed.
// (tests/mcp/client2.mjs is the same for the v2 client.)
//
//   node client.mjs --stdio CTXGATE_BINARY --config FILE [--fetch ID] QUERY
//   node client.mjs --http URL --token JWT [--fetch ID] QUERY
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const stdioBin = opt("--stdio");
const config = opt("--config");
const url = opt("--http");
const token = opt("--token");
const fetchId = opt("--fetch");
const query = args.join(" ");

let transport;
if (stdioBin) {
  // The identity comes from the environment (CTXGATE_USER, CTXGATE_AGENT).
  transport = new StdioClientTransport({
    command: stdioBin,
    args: ["--config", config, "mcp"],
    env: { ...process.env },
    stderr: "inherit",
  });
} else {
  transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
}

const client = new Client({ name: "ctxgate-test", version: "1.0.0" });
const out = { sdk: "@modelcontextprotocol/sdk" };
// The v1 client keeps the agreed version to itself: watch the handshake go
// by (Protocol.connect sets onmessage, then starts the transport).
const start = transport.start.bind(transport);
transport.start = async () => {
  const inner = transport.onmessage;
  transport.onmessage = (msg, extra) => {
    if (msg && msg.result && typeof msg.result.protocolVersion === "string")
      out.protocolVersion = msg.result.protocolVersion;
    return inner?.(msg, extra);
  };
  return start();
};
const send = transport.send.bind(transport);
transport.send = (msg, options) => {
  if (msg && msg.method === "initialize") out.askedVersion = msg.params.protocolVersion;
  return send(msg, options);
};
try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  const s = await client.callTool({ name: "search", arguments: { query } });
  out.search = s.structuredContent;
  out.searchText = JSON.parse(s.content[0].text);
  const first = out.search.results[0];
  if (first) {
    const f = await client.callTool({ name: "fetch", arguments: { id: first.id } });
    out.fetch = f.structuredContent;
  }
  if (fetchId !== undefined) {
    const f = await client.callTool({ name: "fetch", arguments: { id: fetchId } });
    out.fetchById = { isError: !!f.isError, structured: f.structuredContent ?? null };
  }
  await client.close();
} catch (e) {
  out.error = String(e && e.message ? e.message : e);
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(1);
}
process.stdout.write(JSON.stringify(out) + "\n");
