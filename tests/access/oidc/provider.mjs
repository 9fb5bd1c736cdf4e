// A real OpenID provider (panva/oidc-provider) on loopback for the lab's SSO tests.
// Env: PORT, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET. Prints "ready <issuer>" once listening.
// Test-only knobs under /_test/ (never part of a real provider): set an account's claims or disable it,
// and make the next token response carry a tampered ID token (sig | aud | exp | replay).
import { Provider } from 'oidc-provider';
import { SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
const signingKey = await importJWK(signingJwk, 'RS256');

const accounts = new Map(); // id -> { email, name, groups, disabled }
let tamper = null; // the next ID token's fault
let lastIdToken = null;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['ailab-test-cookie-key'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(ctx, id) {
    const acct = accounts.get(id) ?? { email: `${id}@example.org`, name: id, groups: [] };
    if (acct.disabled) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: acct.email,
          email_verified: acct.email_verified ?? true,
          name: acct.name,
          preferred_username: id,
          groups: acct.groups,
        };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/_test/')) return testKnob(ctx);
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    const real = ctx.body.id_token;
    if (tamper) ctx.body = { ...ctx.body, id_token: await spoil(real, tamper) };
    tamper = null;
    lastIdToken = real;
  }
});

async function testKnob(ctx) {
  const body = await readJson(ctx.req);
  const [, , what, id] = ctx.path.split('/');
  if (what === 'accounts') accounts.set(id, { ...(accounts.get(id) ?? {}), ...body });
  else if (what === 'tamper') tamper = body.mode;
  else { ctx.status = 404; return; }
  ctx.body = { ok: true };
}

async function spoil(token, mode) {
  if (mode === 'replay') return lastIdToken ?? token;
  if (mode === 'sig') {
    const [h, p, s] = token.split('.');
    return `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
  }
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  if (mode === 'aud') claims.aud = 'someone-else';
  if (mode === 'exp') { claims.iat -= 7200; claims.exp = Math.floor(Date.now() / 1000) - 3600; }
  if (mode === 'none') {
    const head = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    return `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
  }
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signingJwk.kid }).sign(signingKey);
}

function readJson(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data ? JSON.parse(data) : {}));
  });
}

provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
