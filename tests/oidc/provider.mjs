// A real OpenID provider for govledger's tests: the certified `oidc-provider`
// package, configured for loopback. Started by tests/api/oidc.rs with a JSON
// configuration file as its only argument:
//
//   {"port": 0, "issuer": "http://127.0.0.1:PORT", "keys_file": "...",
//    "rotate": false, "keep": null, "id_token_ttl": 60,
//    "clients": [{"client_id", "client_secret", "redirect_uris",
//                 "post_logout_redirect_uris"}],
//    "accounts": {"alice": {"sub": "...", "groups": [...], "email", "name"}}}
//
// Keys: the private JWKs in `keys_file` (created with one RSA key if missing);
// `rotate` puts a new key first (the one that signs), `keep: N` keeps only the
// first N (the provider withdraws the others). People sign in at
// /interaction/UID with a login form (any password); `POST /test/accounts`
// replaces the accounts, so a test can take a person out of a group.
// Prints `listening PORT` once serving.
//
// Needs GOVLEDGER_TEST_NODE_MODULES: the node_modules folder holding oidc-provider.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// The package is installed where .ci/run puts the tests' npm packages
// (GOVLEDGER_TEST_NODE_MODULES), not beside this file; ES modules do not
// read NODE_PATH, so it is imported by its path.
const modules = process.env.GOVLEDGER_TEST_NODE_MODULES;
const { default: Provider } = await import(pathToFileURL(`${modules}/oidc-provider/lib/index.js`).href);

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let accounts = config.accounts;

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let keys = existsSync(config.keys_file) ? JSON.parse(readFileSync(config.keys_file, 'utf8')) : [newKey()];
if (config.rotate) keys = [newKey(), ...keys];
if (config.keep) keys = keys.slice(0, config.keep);
writeFileSync(config.keys_file, JSON.stringify(keys));

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    ...c,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys },
  cookies: { keys: ['govledger-test-cookie-key'] },
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  claims: { openid: ['sub', 'groups'], email: ['email'], profile: ['name'] },
  ttl: { IdToken: config.id_token_ttl ?? 60, Session: 3600, Interaction: 600, Grant: 3600 },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!doctype html><html lang="en"><head><title>Sign out</title></head><body>
          <h1>Sign out of the test provider?</h1>${form}
          <button id="confirm" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
          </body></html>`;
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // People log in by name; their subject is `sub` (the name when absent).
  findAccount: async (ctx, id) => {
    const account = Object.entries(accounts).find(([name, a]) => (a.sub ?? name) === id)?.[1];
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({
        sub: id,
        groups: account.groups ?? [],
        email: account.email,
        name: account.name,
      }),
    };
  },
});
provider.proxy = false;

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const callback = provider.callback();
const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, config.issuer);
    if (url.pathname === '/test/accounts' && req.method === 'POST') {
      accounts = JSON.parse(await body(req));
      res.writeHead(204).end();
      return;
    }
    const login = url.pathname.match(/^\/interaction\/([^/]+)\/login$/);
    if (login && req.method === 'POST') {
      const form = new URLSearchParams(await body(req));
      const details = await provider.interactionDetails(req, res);
      const account = accounts[form.get('login')];
      if (!account) {
        res.writeHead(401, { 'content-type': 'text/plain' }).end('no such account');
        return;
      }
      const accountId = account.sub ?? form.get('login');
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } },
        { mergeWithLastSubmission: false });
      return;
    }
    const page = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (page && req.method === 'GET') {
      const details = await provider.interactionDetails(req, res);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html>
        <html lang="en"><head><title>Test provider: sign in</title></head><body>
        <h1>Sign in to the test provider</h1>
        <form method="post" action="/interaction/${escape(details.uid)}/login">
          <label for="login">User name</label> <input id="login" name="login" autocomplete="username">
          <label for="password">Password</label> <input id="password" name="password" type="password">
          <button id="submit" type="submit">Sign in</button>
        </form></body></html>`);
      return;
    }
    callback(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e && e.stack || e));
  }
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
