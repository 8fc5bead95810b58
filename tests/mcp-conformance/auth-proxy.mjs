// A pass-through HTTP proxy that adds `Authorization: Bearer $MCP_CONFORMANCE_TOKEN` to every
// request, because the MCP conformance suite has no way to send a header of its own and the
// relay's /mcp wants a token.
//
// Usage: MCP_CONFORMANCE_TOKEN=… node auth-proxy.mjs UPSTREAM_ORIGIN
// Listens on 127.0.0.1, on a port of the system's choosing, and prints that port on one line.
//
// Everything else goes through untouched, bodies streamed both ways (SSE included), with one
// exception so the proxy stays invisible: a Host (or an Origin `http://HOST`) naming the proxy
// itself is rewritten to name the upstream, as if the suite had spoken to it directly. Any
// other Host or Origin (the DNS-rebinding scenario's `evil.example.com`) is passed as it is.
import http from 'node:http';
import https from 'node:https';

const upstream = new URL(process.argv[2] ?? '');
const token = process.env.MCP_CONFORMANCE_TOKEN;
if (!token) {
  console.error('auth-proxy: MCP_CONFORMANCE_TOKEN is not set');
  process.exit(2);
}
const client = upstream.protocol === 'https:' ? https : http;
// Hop-by-hop headers, which belong to one connection and are not forwarded.
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'];
let self = ''; // this proxy's host:port, once listening

const server = http.createServer((req, res) => {
  const headers = { ...req.headers };
  for (const h of HOP) delete headers[h];
  if (headers.host === self) headers.host = upstream.host;
  if (headers.origin === `http://${self}`) headers.origin = upstream.origin;
  headers.authorization ??= `Bearer ${token}`;

  const out = client.request(
    {
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    },
    (up) => {
      const back = { ...up.headers };
      for (const h of HOP) delete back[h];
      res.writeHead(up.statusCode ?? 502, up.statusMessage, back);
      res.flushHeaders();
      up.pipe(res);
      up.on('error', () => res.destroy());
    },
  );
  out.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`auth-proxy: ${e.message}\n`);
    } else {
      res.destroy();
    }
  });
  // The client went away (e.g. it cancelled an SSE stream): drop the upstream request too.
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  req.pipe(out);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  self = `127.0.0.1:${port}`;
  console.log(port);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
