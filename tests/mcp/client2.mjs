// client2.mjs - drive ctxgate's MCP server with the official MCP TypeScript
// SDK v2 client (@modelcontextprotocol/client, pinned in tests/package.json):
// connect, list the tools, search, fetch the first result, and fetch an id
// given on the command line. Prints one JSON object on stdout, with the
// protocol version and era the connection agreed on.
//
//   node client2.mjs --stdio CTXGATE_BINARY --config FILE [--fetch ID]
//                    [--negotiation auto|legacy] QUERY
//   node client2.mjs --http URL --token JWT [--fetch ID] [--negotiation auto|legacy] QUERY
//
// --versions V1,V2 sets the versions the client knows (the SDK's
// supportedProtocolVersions): with --negotiation legacy and 2025-06-18 it
// is a client of that revision.
//
// --negotiation auto (the default here) probes with server/discover and
// speaks 2026-07-28 when the server offers it; legacy is the SDK's own
// default, the initialize handshake of 2025-11-25.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";

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
const negotiation = opt("--negotiation") ?? "auto";
const offered = opt("--versions");
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

const options = negotiation === "legacy" ? {} : { versionNegotiation: { mode: negotiation } };
if (offered) options.supportedProtocolVersions = offered.split(",");
const client = new Client({ name: "ctxgate-test-v2", version: "1.0.0" }, options);
const out = { sdk: "@modelcontextprotocol/client" };
try {
  await client.connect(transport);
  out.protocolVersion = client.getNegotiatedProtocolVersion();
  out.era = client.getProtocolEra();
  out.server = client.getServerVersion() ?? null;
  const discovered = client.getDiscoverResult();
  out.supportedVersions = discovered ? discovered.supportedVersions : null;
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
