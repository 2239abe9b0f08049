// provider.mjs - a real OpenID provider for the tests: the npm package
// oidc-provider (pinned in tests/package.json) on 127.0.0.1, port picked by
// the system. It prints "ISSUER <url>" once it listens.
//
// Tokens come two ways, both signed with the provider's own JWKS:
//   - the real token endpoint: client "agent-bot" (secret "agent-bot-secret")
//     may use client_credentials; its JWT access token's audience is the
//     resource indicator it asks for (RFC 8707), default RESOURCE below;
//   - GET /_test/mint?sub=&act=&email=&aud=&alg=RS256|ES256&expired=1
//     &issuer=other&foreign=1 : an AccessToken minted with the provider's own
//     API for an account (no login pages in a test). issuer=other signs with
//     the same keys as a provider of another issuer; foreign=1 with another
//     key under the same kid.
// And for the tests that watch ctxgate follow the provider:
//   - POST /_test/rotate : new keys (new kids), the old ones dropped;
//   - GET /_test/jwks_hits : how many times the JWKS was fetched;
//   - POST /_test/max_age?s=N : the JWKS answers Cache-Control max-age=N;
//   - POST /_test/hold : JWKS requests wait until POST /_test/release;
//     GET /_test/held says how many wait.
//
// argv: [resource]  (the audience tokens carry by default)
import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const RESOURCE = process.argv[2] || 'https://ctxgate.test';

// stdout carries the ISSUER line only (the harness may close it after);
// the provider's own notes go to stderr.
console.log = console.error;
console.info = console.error;
process.stdout.on('error', () => {});

let generation = 0;
let jwksHits = 0;
let maxAge = null;
let holding = false;
let held = [];

function newKeys() {
  generation += 1;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return [
    { ...rsa.export({ format: 'jwk' }), kid: `rsa-${generation}`, use: 'sig', alg: 'RS256' },
    { ...ec.export({ format: 'jwk' }), kid: `ec-${generation}`, use: 'sig', alg: 'ES256' },
  ];
}

function resourceServer(audience, alg) {
  return {
    scope: 'search',
    audience,
    accessTokenFormat: 'jwt',
    accessTokenTTL: 600,
    jwt: { sign: { alg } },
  };
}

function makeProvider(issuer, keys) {
  const p = new Provider(issuer, {
    clients: [
      {
        client_id: 'agent-bot',
        client_secret: 'agent-bot-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
      {
        client_id: 'app',
        client_secret: 'app-secret-0123456789',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
    ],
    jwks: { keys },
    scopes: ['openid', 'search'],
    ttl: { AccessToken: 600, ClientCredentials: 600 },
    // the claims /_test/mint asks for (act, email) go into the token
    extraTokenClaims: async (_ctx, token) => token.testClaims,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => resourceServer(resource, 'RS256'),
      },
    },
  });
  return p;
}

// mint - an access token for an account, made by provider p's own models.
async function mint(p, q) {
  const client = await p.Client.find('app');
  const aud = q.get('aud') || RESOURCE;
  const rs = new p.ResourceServer(aud, resourceServer(aud, q.get('alg') || 'RS256'));
  const extra = {};
  if (q.get('act')) extra.act = { sub: q.get('act') };
  if (q.get('email')) extra.email = q.get('email');
  const at = new p.AccessToken({
    accountId: q.get('sub') || 'nobody',
    client,
    resourceServer: rs,
    scope: 'search',
    gty: 'test',
  });
  at.testClaims = extra;
  if (q.get('expired')) {
    const now = Math.floor(Date.now() / 1000);
    at.iat = now - 7200;
    at.exp = now - 3600;
  }
  return at.save();
}

const server = http.createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

let keys = newKeys();
let provider = makeProvider(issuer, keys);
let other = makeProvider(`${issuer}/other`, keys);
let foreignKeys = newKeys().map((k, i) => ({ ...k, kid: keys[i].kid }));
let foreign = makeProvider(issuer, foreignKeys);

function rotate() {
  keys = newKeys();
  provider = makeProvider(issuer, keys);
  other = makeProvider(`${issuer}/other`, keys);
  foreignKeys = newKeys().map((k, i) => ({ ...k, kid: keys[i].kid }));
  foreign = makeProvider(issuer, foreignKeys);
}

async function control(req, res, url) {
  const reply = (status, text) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(text);
  };
  if (url.pathname === '/_test/mint') {
    const p = url.searchParams.get('issuer') === 'other' ? other
      : url.searchParams.get('foreign') ? foreign : provider;
    reply(200, await mint(p, url.searchParams));
  } else if (url.pathname === '/_test/rotate' && req.method === 'POST') {
    rotate();
    reply(200, keys.map((k) => k.kid).join(' '));
  } else if (url.pathname === '/_test/max_age' && req.method === 'POST') {
    maxAge = Number(url.searchParams.get('s'));
    reply(200, String(maxAge));
  } else if (url.pathname === '/_test/hold' && req.method === 'POST') {
    holding = true;
    reply(200, 'holding');
  } else if (url.pathname === '/_test/release' && req.method === 'POST') {
    holding = false;
    const waiting = held;
    held = [];
    waiting.forEach((go) => go());
    reply(200, String(waiting.length));
  } else if (url.pathname === '/_test/held') {
    reply(200, String(held.length));
  } else if (url.pathname === '/_test/jwks_hits') {
    reply(200, String(jwksHits));
  } else {
    reply(404, 'no such test endpoint');
  }
}

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/_test/')) {
    control(req, res, url).catch((e) => {
      res.writeHead(500);
      res.end(String(e && e.stack));
    });
    return;
  }
  if (url.pathname === '/jwks') {
    jwksHits += 1;
    if (maxAge !== null) res.setHeader('Cache-Control', `public, max-age=${maxAge}`);
    if (holding) {
      const p = provider;
      held.push(() => p.callback()(req, res));
      return;
    }
  }
  provider.callback()(req, res);
});

process.on('SIGTERM', () => { server.close(); process.exit(0); });
process.stdout.write(`ISSUER ${issuer}\n`);
