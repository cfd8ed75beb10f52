// The mini program client (../wxlink.js) against the real service: `wxlink serve --sandbox` with
// its built-in WeChat simulator, `wx` stubbed through the simulator's control API.
//
//   cargo build -p wxlink-api --bin wxlink && node --test examples/miniprogram/test/
//
// The binary is $WXLINK_BIN, else target/debug/wxlink.
'use strict'

const { describe, it, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')

const { createWxlink, WxlinkError } = require('../wxlink')
const { startSandbox, UNBOUND_APP, BOUND_APP } = require('../testing/sandbox')
const { createWxStub } = require('../testing/wx-sim-stub')

assert.equal(typeof fetch, 'function', 'these tests need node >= 18 (global fetch)')

describe('wxlink mini program client against `wxlink serve --sandbox`', () => {
  let sandbox

  before(async () => {
    sandbox = await startSandbox()
  })

  after(async () => {
    if (sandbox) await sandbox.stop()
  })

  afterEach(async () => {
    // Faults a test queued must not reach the next one.
    if (sandbox) await fetch(`${sandbox.simUrl}/__sim/faults`, { method: 'DELETE' })
  })

  /** A WeChat user on one phone in one mini program, and the client under test. */
  function person(appid, who, opts) {
    const id = `${who}-${crypto.randomBytes(6).toString('hex')}`
    const unionid = opts && opts.unionid !== undefined ? opts.unionid : `${id}-union`
    return personWith(appid, `${id}-in-${appid.slice(-2)}`, unionid)
  }

  function personWith(appid, openid, unionid) {
    const stub = createWxStub({ simUrl: sandbox.simUrl, appid, openid, unionid })
    const client = createWxlink({ baseUrl: sandbox.baseUrl, appid, wx: stub.wx })
    return { stub, client, appid, openid, unionid }
  }

  async function rawMe(token) {
    const res = await fetch(`${sandbox.baseUrl}/v1/me`, { headers: { authorization: `Bearer ${token}` } })
    return { status: res.status, body: await res.json() }
  }

  it('logs in provisionally, then ensureLinked links the unionid from wx.getUserInfo', async () => {
    const { stub, client, appid, openid } = person(UNBOUND_APP, 'alice')

    const login = await client.login()
    assert.equal(login.unionid_linked, false)
    assert.equal(login.needs_user_info, true)
    assert.equal(login.token_type, 'Bearer')
    assert.equal(stub.wx.getStorageSync('wxlink_session').token, login.token, 'token stored')

    const linked = await client.ensureLinked()
    assert.deepEqual(linked, { user_id: login.user_id, unionid_linked: true, merged: false })
    const posts = stub.requestsTo('/v1/wechat/user-info')
    assert.equal(posts.length, 1)
    assert.equal(posts[0].data.code, undefined, 'no refresh code needed')
    assert.ok(posts[0].data.raw_data && posts[0].data.signature, 'raw_data and signature sent')

    const me = await client.me()
    assert.deepEqual(me, { user_id: login.user_id, unionid_linked: true, identities: [{ appid, openid }] })

    // Linked now: a second ensureLinked asks neither WeChat nor wxlink.
    const before = { getUserInfo: stub.calls.getUserInfo, requests: stub.requests.length }
    assert.equal((await client.ensureLinked()).unionid_linked, true)
    assert.equal(stub.calls.getUserInfo, before.getUserInfo)
    assert.equal(stub.requests.length, before.requests)
  })

  it('on a bound mini program the login is linked already and ensureLinked does nothing', async () => {
    const { stub, client } = person(BOUND_APP, 'bob')
    const login = await client.login()
    assert.equal(login.unionid_linked, true)
    assert.equal(login.needs_user_info, false)
    const linked = await client.ensureLinked()
    assert.deepEqual(linked, { user_id: login.user_id, unionid_linked: true, merged: false })
    assert.equal(stub.calls.getUserInfo, 0)
    assert.equal(stub.requestsTo('/v1/wechat/user-info').length, 0)
  })

  it('ensureLinked merges a provisional user into the owner of the unionid', async () => {
    const inB = person(BOUND_APP, 'carol')
    const owner = await inB.client.login()
    const inA = personWith(UNBOUND_APP, `${inB.openid}-a`, inB.unionid)
    const provisional = await inA.client.login()
    assert.notEqual(provisional.user_id, owner.user_id)

    const linked = await inA.client.ensureLinked()
    assert.deepEqual(linked, { user_id: owner.user_id, unionid_linked: true, merged: true })
    assert.equal(inA.client.getSession().user_id, owner.user_id, 'stored user_id follows the merge')
    const me = await inA.client.me()
    assert.equal(me.user_id, owner.user_id)
    assert.deepEqual(me.identities.map((i) => i.appid).sort(), [UNBOUND_APP, BOUND_APP].sort())
  })

  it('recovers a stale session_key with one wx.login and exactly one retry with code', async () => {
    const { stub, client } = person(UNBOUND_APP, 'dave')
    const login = await client.login()
    await stub.loginBehindTheBack() // e.g. another module called wx.login: wxlink's key is stale
    assert.equal(stub.calls.login, 2)

    const linked = await client.ensureLinked()
    assert.deepEqual(linked, { user_id: login.user_id, unionid_linked: true, merged: false })

    const posts = stub.requestsTo('/v1/wechat/user-info')
    assert.equal(posts.length, 2, 'one try and exactly one retry')
    assert.equal(posts[0].status, 422)
    assert.equal(posts[0].body.error.code, 'session_key_expired')
    assert.equal(posts[0].data.code, undefined)
    assert.equal(posts[1].status, 200)
    assert.equal(typeof posts[1].data.code, 'string', 'the retry carries the fresh code')
    assert.notEqual(posts[1].data.encrypted_data, posts[0].data.encrypted_data, 'fresh user data')
    assert.equal(stub.calls.login, 3, 'one wx.login for the retry')
    assert.equal(stub.calls.getUserInfo, 2)
    assert.equal(stub.requestsTo('/v1/wechat/login').length, 1, 'no new wxlink login')

    // The refreshed key is stored: the next user data decrypts without a code.
    assert.equal((await client.me()).unionid_linked, true)
  })

  it('surfaces the error when the one retry fails too, without a second retry', async () => {
    const { stub, client } = person(UNBOUND_APP, 'erin')
    await client.login()
    await stub.loginBehindTheBack()
    // The retry's code2Session meets WeChat 40226 (high-risk user).
    const fault = await fetch(`${sandbox.simUrl}/__sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appid: UNBOUND_APP, path: '/sns/jscode2session', faults: [{ kind: 'high_risk' }] }),
    })
    assert.equal(fault.status, 201)

    await assert.rejects(client.ensureLinked(), (e) => {
      assert.ok(e instanceof WxlinkError)
      assert.equal(e.code, 'user_blocked')
      assert.equal(e.status, 403)
      return true
    })
    const posts = stub.requestsTo('/v1/wechat/user-info')
    assert.equal(posts.length, 2)
    assert.equal(typeof posts[1].data.code, 'string')
    assert.equal(client.getSession().unionid_linked, false)
  })

  it('logs in again once when the token is invalid, and keeps the user', async () => {
    const { stub, client } = person(UNBOUND_APP, 'frank')
    const login = await client.login()
    // The token dies behind the client's back (revoked elsewhere, expired, database restored…).
    const revoke = await fetch(`${sandbox.baseUrl}/v1/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${login.token}` },
    })
    assert.equal(revoke.status, 204)

    const me = await client.me()
    assert.equal(me.user_id, login.user_id, 'same (appid, openid), same user')
    assert.equal(stub.calls.login, 2, 'one new wx.login')
    const meCalls = stub.requestsTo('/v1/me')
    assert.deepEqual(meCalls.map((r) => r.status), [401, 200])
    const session = client.getSession()
    assert.notEqual(session.token, login.token)
    assert.equal(stub.wx.getStorageSync('wxlink_session').token, session.token, 'new token stored')

    // A client restored from storage with a dead token also recovers.
    stub.wx.setStorageSync('wxlink_session', { token: login.token, user_id: login.user_id })
    const restored = createWxlink({ baseUrl: sandbox.baseUrl, appid: UNBOUND_APP, wx: stub.wx })
    const linked = await restored.ensureLinked()
    assert.deepEqual(linked, { user_id: login.user_id, unionid_linked: true, merged: false })
    assert.equal(stub.calls.login, 3)
  })

  it('logs in again once when the session spent its budget of failed decryptions', async () => {
    const { stub, client } = person(UNBOUND_APP, 'ivan')
    const login = await client.login()
    // Someone spent this session's budget (5) with data that does not open.
    const garbage = { encrypted_data: 'AAAAAAAAAAAAAAAAAAAAAA==', iv: 'AAAAAAAAAAAAAAAAAAAAAA==' }
    const statuses = []
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${sandbox.baseUrl}/v1/wechat/user-info`, {
        method: 'POST',
        headers: { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(garbage),
      })
      statuses.push(res.status)
    }
    assert.deepEqual(statuses, [422, 422, 422, 422, 422, 429])

    const linked = await client.ensureLinked()
    assert.deepEqual(linked, { user_id: login.user_id, unionid_linked: true, merged: false })
    const posts = stub.requestsTo('/v1/wechat/user-info')
    assert.deepEqual(posts.map((r) => r.status), [429, 200], 'one refusal, then the new session links')
    assert.equal(posts[0].body.error.code, 'too_many_attempts')
    assert.equal(stub.requestsTo('/v1/wechat/login').length, 2, 'one new wxlink login')
    assert.notEqual(client.getSession().token, login.token, 'a new session')
  })

  it('does not log in again when the WeChat user spent its daily budget: it throws with retryAfter', async () => {
    const { stub, client } = person(UNBOUND_APP, 'olivia')
    const garbage = { encrypted_data: 'AAAAAAAAAAAAAAAAAAAAAA==', iv: 'AAAAAAAAAAAAAAAAAAAAAA==' }
    // Four sessions of five failures each spend the identity's day (20).
    for (let session = 0; session < 4; session++) {
      const login = await client.login()
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${sandbox.baseUrl}/v1/wechat/user-info`, {
          method: 'POST',
          headers: { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(garbage),
        })
        assert.equal(res.status, 422)
      }
    }
    await client.login()
    const loginsBefore = stub.requestsTo('/v1/wechat/login').length
    await assert.rejects(client.ensureLinked(), (e) => {
      assert.equal(e.code, 'too_many_attempts')
      assert.equal(e.status, 429)
      assert.ok(e.retryAfter > 0, `Retry-After: ${e.retryAfter}`)
      assert.doesNotMatch(e.message, /log in again/)
      return true
    })
    assert.equal(stub.requestsTo('/v1/wechat/login').length, loginsBefore, 'no login: it cannot help')
  })

  it('logout revokes the token and forgets it; a second logout is a no-op', async () => {
    const { stub, client } = person(UNBOUND_APP, 'grace')
    const login = await client.login()
    await client.logout()
    assert.equal(client.getSession(), null)
    assert.equal(stub.wx.getStorageSync('wxlink_session'), '')
    const logouts = stub.requestsTo('/v1/logout')
    assert.equal(logouts.length, 1)
    assert.equal(logouts[0].status, 204)
    const after = await rawMe(login.token)
    assert.equal(after.status, 401)
    assert.equal(after.body.error.code, 'invalid_token')

    await client.logout()
    assert.equal(stub.requestsTo('/v1/logout').length, 1)
    assert.equal(stub.calls.login, 1, 'logout never logs in')
  })

  it('cancelAccount proves presence with a fresh wx.login code; the token alone cannot cancel', async () => {
    const { stub, client } = person(BOUND_APP, 'judy')
    const login = await client.login()

    // A stolen token alone, or with another person's code: refused, and the account stays.
    const bare = await fetch(`${sandbox.baseUrl}/v1/me`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${login.token}` },
    })
    assert.equal(bare.status, 400)
    assert.equal((await bare.json()).error.code, 'reauthentication_required')
    const thief = person(BOUND_APP, 'mallory')
    const thiefsCode = await new Promise((resolve, reject) => thief.stub.wx.login({ success: (r) => resolve(r.code), fail: reject }))
    const foreign = await fetch(`${sandbox.baseUrl}/v1/me`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ code: thiefsCode }),
    })
    assert.equal(foreign.status, 403)
    assert.equal((await foreign.json()).error.code, 'identity_mismatch')
    assert.equal((await rawMe(login.token)).status, 200, 'the account is still there')

    // The person's own client: wx.login, then DELETE /v1/me with the code.
    const loginsBefore = stub.calls.login
    await client.cancelAccount()
    assert.equal(stub.calls.login, loginsBefore + 1, 'one fresh wx.login for the proof')
    const cancels = stub.requestsTo('/v1/me').filter((r) => r.method === 'DELETE')
    assert.equal(cancels.length, 1)
    assert.equal(cancels[0].status, 204)
    assert.equal(typeof cancels[0].data.code, 'string')
    assert.equal(client.getSession(), null, 'the session is forgotten')
    const after = await rawMe(login.token)
    assert.equal(after.status, 401)
    assert.equal(after.body.error.code, 'invalid_token')

    // Without a session it never logs in to cancel.
    await assert.rejects(client.cancelAccount(), { code: 'invalid_token', status: 401 })
    assert.equal(stub.requestsTo('/v1/wechat/login').length, 1, 'no login to cancel')
  })

  it('phoneNumber exchanges the getPhoneNumber code; a spent code is invalid_code, not a relogin', async () => {
    const { stub, client } = person(UNBOUND_APP, 'heidi')
    await client.login()
    const code = await stub.phoneCode('13800138000')
    const phone = await client.phoneNumber(code)
    assert.deepEqual(phone, { phone_number: '13800138000', pure_phone_number: '13800138000', country_code: '86' })

    await assert.rejects(client.phoneNumber(code), (e) => {
      assert.equal(e.code, 'invalid_code')
      assert.equal(e.status, 401)
      return true
    })
    assert.equal(stub.calls.login, 1, 'a 401 invalid_code is not a 401 invalid_token')
  })

  it('request() turns the contract error shape into errors with .code and .status', async () => {
    const { client } = person(UNBOUND_APP, 'ivan')
    await assert.rejects(client.request('GET', '/v1/nope', { auth: false }), {
      name: 'WxlinkError',
      code: 'not_found',
      status: 404,
    })
    await assert.rejects(client.request('POST', '/v1/wechat/login', { auth: false, data: { appid: 'wx0000000000000000', code: 'x' } }), {
      code: 'unknown_app',
      status: 400,
    })
    const wrongApp = createWxlink({
      baseUrl: sandbox.baseUrl,
      appid: 'wx0000000000000000',
      wx: createWxStub({ simUrl: sandbox.simUrl, appid: UNBOUND_APP, openid: 'x' }).wx,
    })
    await assert.rejects(wrongApp.login(), { code: 'unknown_app', status: 400 })
    const unreachable = createWxlink({ baseUrl: 'http://127.0.0.1:9', appid: UNBOUND_APP, wx: createWxStub({ simUrl: sandbox.simUrl, appid: UNBOUND_APP, openid: 'y' }).wx })
    await assert.rejects(unreachable.login(), { code: 'network_error', status: 0 })
  })
})

describe('with signed access tokens (`[tokens] format = "jwt"`)', () => {
  let sandbox

  before(async () => {
    sandbox = await startSandbox({
      env: { WXLINK__TOKENS__FORMAT: 'jwt', WXLINK__TOKENS__ISSUER: 'https://id.example.com' },
    })
  })

  after(async () => {
    if (sandbox) await sandbox.stop()
  })

  /** A user logged in on one phone; `restart` is the mini program started again later. */
  async function loggedIn(who) {
    const id = `${who}-${crypto.randomBytes(6).toString('hex')}`
    const stub = createWxStub({ simUrl: sandbox.simUrl, appid: BOUND_APP, openid: id, unionid: `${id}-union` })
    const client = createWxlink({ baseUrl: sandbox.baseUrl, appid: BOUND_APP, wx: stub.wx })
    const login = await client.login()
    assert.equal(login.token.split('.').length, 3, 'a JWT')
    assert.ok(login.refresh_token, 'with a refresh token')
    assert.equal(stub.wx.getStorageSync('wxlink_session').refresh_token, login.refresh_token)
    const restart = () => createWxlink({ baseUrl: sandbox.baseUrl, appid: BOUND_APP, wx: stub.wx })
    return { stub, login, restart }
  }

  /** What an access token that expired while the mini program slept looks like to wxlink. */
  function expireStoredToken(stub, fields) {
    const stored = stub.wx.getStorageSync('wxlink_session')
    // A changed signature: wxlink answers 401 `invalid_token`, exactly as for an expired token.
    const spoil = (t) => t.slice(0, -10) + (t[t.length - 10] === 'A' ? 'B' : 'A') + t.slice(-9)
    for (const field of fields) stored[field] = spoil(stored[field])
    stub.wx.setStorageSync('wxlink_session', stored)
  }

  it('refreshes an expired access token instead of calling wx.login', async () => {
    const { stub, login, restart } = await loggedIn('rita')
    expireStoredToken(stub, ['token'])
    const client = restart()

    const me = await client.me()
    assert.equal(me.user_id, login.user_id)
    assert.equal(stub.calls.login, 1, 'no second wx.login')
    assert.equal(stub.requestsTo('/v1/token/refresh').length, 1)
    const stored = stub.wx.getStorageSync('wxlink_session')
    assert.notEqual(stored.refresh_token, login.refresh_token, 'the new refresh token is kept')
    assert.notEqual(stored.token, login.token)

    // The chain goes on: the next expiry refreshes with the new refresh token.
    expireStoredToken(stub, ['token'])
    assert.equal((await restart().me()).user_id, login.user_id)
    assert.equal(stub.requestsTo('/v1/token/refresh').length, 2)
    assert.equal(stub.calls.login, 1)
  })

  it('logs in again when the refresh is refused', async () => {
    const { stub, login, restart } = await loggedIn('sam')
    expireStoredToken(stub, ['token', 'refresh_token'])
    const client = restart()

    const me = await client.me()
    assert.equal(me.user_id, login.user_id, 'the same person, by unionid')
    const refreshes = stub.requestsTo('/v1/token/refresh')
    assert.equal(refreshes.length, 1)
    assert.equal(refreshes[0].status, 401)
    assert.equal(stub.calls.login, 2, 'one new wx.login')
  })

  it('requests at once with an expired token share one refresh, so the session survives', async () => {
    const { stub, login, restart } = await loggedIn('tess')
    expireStoredToken(stub, ['token'])
    const client = restart()

    const answers = await Promise.all([client.me(), client.me(), client.me()])
    for (const me of answers) assert.equal(me.user_id, login.user_id)
    assert.equal(stub.requestsTo('/v1/token/refresh').length, 1, 'one refresh token, used once')
    assert.equal(stub.calls.login, 1)
    // Had two refreshes raced, wxlink would have revoked the session; it is alive.
    expireStoredToken(stub, ['token'])
    assert.equal((await restart().me()).user_id, login.user_id)
    assert.equal(stub.calls.login, 1)
  })
})
