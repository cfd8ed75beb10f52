/**
 * wxlink client for WeChat mini programs.
 *
 * Plain CommonJS with no dependencies: copy this file into a mini program (e.g. `utils/wxlink.js`)
 * and `require` it. Everything WeChat-specific goes through the injected `wx` object, so the same
 * module runs under node with a stub (see ../testing/wx-sim-stub.js).
 *
 *   const { createWxlink } = require('./utils/wxlink')
 *   const auth = createWxlink({ baseUrl: 'https://api.example.com', appid: 'wx…', wx })
 *   await auth.login()          // wx.login → POST /v1/wechat/login; token stored
 *   await auth.ensureLinked()   // when needs_user_info: wx.getUserInfo → POST /v1/wechat/user-info
 *   const me = await auth.me()  // GET /v1/me
 *   await auth.cancelAccount()  // wx.login → DELETE /v1/me {code}: the account is gone for good
 *
 * With wxlink's `[tokens] format = "jwt"` the login also answers a refresh token: when the access
 * token expires (401 `invalid_token`) the client exchanges it at POST /v1/token/refresh instead of
 * calling wx.login, and logs in again only when the refresh is refused.
 *
 * Every failure is a WxlinkError: `.code` is the contract's error code (docs/contract.md) or one of
 * this client's own (`network_error`, `unexpected_response`, `wx_login_failed`,
 * `wx_user_info_failed`), `.status` the HTTP status (0 when no HTTP answer came).
 */
'use strict'

const DEFAULT_STORAGE_KEY = 'wxlink_session'
/** 422 codes after which a fresh wx.login, fresh user data and one retry with `code` can help. */
const STALE_SESSION_KEY_CODES = ['decrypt_failed', 'session_key_expired']

class WxlinkError extends Error {
  /**
   * @param {string} message
   * @param {{code: string, status?: number, retryAfter?: number|null, cause?: unknown}} details
   */
  constructor(message, details) {
    super(message)
    this.name = 'WxlinkError'
    this.code = details.code
    this.status = details.status || 0
    /** Seconds from a `Retry-After` header (429 `rate_limited`), else null. */
    this.retryAfter = details.retryAfter == null ? null : details.retryAfter
    if (details.cause !== undefined) this.cause = details.cause
  }
}

/** Calls a callback-style wx API (`success`/`fail`) and returns a Promise. */
function callWx(wx, name, options) {
  return new Promise((resolve, reject) => {
    if (!wx || typeof wx[name] !== 'function') {
      reject(new Error(`wx.${name} is not available`))
      return
    }
    try {
      wx[name](Object.assign({}, options, { success: resolve, fail: reject }))
    } catch (e) {
      reject(e)
    }
  })
}

function headerValue(headers, name) {
  if (!headers) return undefined
  const wanted = name.toLowerCase()
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === wanted) return headers[key]
  }
  return undefined
}

function wxErrMsg(e) {
  return (e && (e.errMsg || e.message)) || String(e)
}

/**
 * @param {object} options
 * @param {string} options.baseUrl  wxlink's base URL, e.g. `https://api.example.com` (must be in the
 *   mini program's request domain list)
 * @param {string} options.appid    this mini program's appid
 * @param {object} options.wx       the `wx` global (or a stub): login, getUserInfo, request,
 *   getStorageSync, setStorageSync, removeStorageSync
 * @param {string} [options.storageKey='wxlink_session'] where the session is kept in storage
 * @param {number} [options.timeoutMs]  wx.request timeout
 */
function createWxlink(options) {
  const { baseUrl, appid, wx } = options || {}
  if (!baseUrl || !appid || !wx) throw new Error('createWxlink needs { baseUrl, appid, wx }')
  const base = String(baseUrl).replace(/\/+$/, '')
  const storageKey = options.storageKey || DEFAULT_STORAGE_KEY
  const timeoutMs = options.timeoutMs

  /** {token, refresh_token?, user_id, unionid_linked} or null */
  let session = readStoredSession()
  /** the login in flight, shared by every caller (each wx.login rotates the session_key) */
  let loginInFlight = null
  /**
   * the refresh in flight, shared by every caller: a refresh token works once, and presenting it
   * a second time makes wxlink revoke the whole session (reuse detection)
   */
  let refreshInFlight = null

  function readStoredSession() {
    try {
      const stored = wx.getStorageSync(storageKey)
      if (stored && typeof stored === 'object' && typeof stored.token === 'string') return stored
    } catch (_) {
      // unreadable storage: start logged out
    }
    return null
  }

  function saveSession(next) {
    session = next
    try {
      if (next) wx.setStorageSync(storageKey, next)
      else wx.removeStorageSync(storageKey)
    } catch (_) {
      // storage full or unavailable: the session still lives in memory
    }
  }

  function updateSession(fields) {
    if (session) saveSession(Object.assign({}, session, fields))
  }

  async function wxLoginCode() {
    let res
    try {
      res = await callWx(wx, 'login', {})
    } catch (e) {
      throw new WxlinkError(`wx.login failed: ${wxErrMsg(e)}`, { code: 'wx_login_failed', cause: e })
    }
    if (!res || !res.code) {
      throw new WxlinkError(`wx.login gave no code: ${wxErrMsg(res)}`, { code: 'wx_login_failed' })
    }
    return res.code
  }

  async function wxUserInfo() {
    let res
    try {
      res = await callWx(wx, 'getUserInfo', { withCredentials: true, lang: 'zh_CN' })
    } catch (e) {
      throw new WxlinkError(`wx.getUserInfo failed: ${wxErrMsg(e)}`, {
        code: 'wx_user_info_failed',
        cause: e,
      })
    }
    if (!res || !res.encryptedData || !res.iv) {
      throw new WxlinkError('wx.getUserInfo gave no encryptedData/iv (withCredentials needs a prior wx.login)', {
        code: 'wx_user_info_failed',
      })
    }
    return res
  }

  /** One HTTP exchange; resolves with the parsed body of a 2xx, rejects with a WxlinkError. */
  async function send(method, path, data, token) {
    const header = { 'content-type': 'application/json' }
    if (token) header.authorization = `Bearer ${token}`
    const req = { url: base + path, method, header, dataType: 'json' }
    if (data !== undefined) req.data = data
    if (timeoutMs) req.timeout = timeoutMs
    let res
    try {
      res = await callWx(wx, 'request', req)
    } catch (e) {
      throw new WxlinkError(`${method} ${path} failed: ${wxErrMsg(e)}`, { code: 'network_error', cause: e })
    }
    const status = res.statusCode
    if (status >= 200 && status < 300) return res.data === '' ? null : res.data
    const body = res.data
    const error = body && typeof body === 'object' && body.error
    const retryAfterHeader = Number(headerValue(res.header, 'retry-after'))
    const retryAfter = Number.isFinite(retryAfterHeader) ? retryAfterHeader : null
    if (error && typeof error.code === 'string') {
      throw new WxlinkError(error.message || error.code, { code: error.code, status, retryAfter })
    }
    throw new WxlinkError(`${method} ${path} answered HTTP ${status} without wxlink's error body`, {
      code: 'unexpected_response',
      status,
      retryAfter,
    })
  }

  function isInvalidToken(e) {
    return e instanceof WxlinkError && e.status === 401 && e.code === 'invalid_token'
  }

  /** The session's budget of failed decryptions is spent: a new login starts a new one. The
   * WeChat user's daily budget (with `Retry-After`) is not: no login helps until then. */
  function isOutOfSessionAttempts(e) {
    return e instanceof WxlinkError && e.status === 429 && e.code === 'too_many_attempts' && e.retryAfter == null
  }

  /**
   * Calls wxlink. With `auth` (the default) it sends the stored token, logging in first when there
   * is none; on 401 `invalid_token` it logs in again ONCE and repeats the request (`relogin: false`
   * turns that off). Errors become WxlinkError with `.code` and `.status`.
   *
   * @param {string} method
   * @param {string} path e.g. '/v1/me'
   * @param {{data?: object, auth?: boolean, relogin?: boolean}} [opts]
   */
  async function request(method, path, opts) {
    const { data, auth = true, relogin = true } = opts || {}
    if (!auth) return send(method, path, data, null)
    let justLoggedIn = false
    if (!session) {
      if (!relogin) throw new WxlinkError('not logged in', { code: 'invalid_token', status: 401 })
      await login()
      justLoggedIn = true
    }
    const used = session.token
    try {
      return await send(method, path, data, used)
    } catch (e) {
      if (!isInvalidToken(e) || !relogin || justLoggedIn) throw e
      // Only a caller whose token is still current renews it; the others reuse the new token
      // (or wait for the renewal in flight).
      if (!session || session.token === used || refreshInFlight || loginInFlight) {
        await (refreshInFlight || loginInFlight || renewSession())
      }
      return send(method, path, data, session.token)
    }
  }

  async function doLogin() {
    const code = await wxLoginCode()
    const out = await send('POST', '/v1/wechat/login', { appid, code }, null)
    const next = { token: out.token, user_id: out.user_id, unionid_linked: out.unionid_linked }
    if (out.refresh_token) next.refresh_token = out.refresh_token
    saveSession(next)
    return out
  }

  /**
   * A new access token for an expired one: POST /v1/token/refresh with the stored refresh token
   * when there is one (no wx.login, so the session_key stays), else, or when wxlink refuses the
   * refresh, a new login. Concurrent callers share one renewal.
   */
  function renewSession() {
    if (refreshInFlight) return refreshInFlight
    const refreshToken = session && session.refresh_token
    if (!refreshToken) {
      saveSession(null)
      return login()
    }
    refreshInFlight = (async () => {
      let out
      try {
        out = await send('POST', '/v1/token/refresh', { refresh_token: refreshToken }, null)
      } catch (e) {
        // Refused (expired, revoked, or already used): only a new login helps. Network
        // failures and the like are the caller's to see.
        if (!(e instanceof WxlinkError) || e.status !== 401) throw e
        saveSession(null)
        return login()
      }
      saveSession({
        token: out.token,
        refresh_token: out.refresh_token,
        user_id: out.user_id,
        unionid_linked: out.unionid_linked,
      })
      return out
    })().finally(() => {
      refreshInFlight = null
    })
    return refreshInFlight
  }

  /**
   * wx.login → POST /v1/wechat/login. Stores the token and answers the response
   * `{token, token_type, expires_in, user_id, unionid_linked, needs_user_info}`.
   * Concurrent calls share one login.
   */
  function login() {
    if (!loginInFlight) {
      loginInFlight = doLogin().finally(() => {
        loginInFlight = null
      })
    }
    return loginInFlight
  }

  /** GET /v1/me → `{user_id, unionid_linked, identities}` (logs in when needed). */
  async function me() {
    const out = await request('GET', '/v1/me')
    updateSession({ user_id: out.user_id, unionid_linked: out.unionid_linked })
    return out
  }

  /** wx.getUserInfo (fresh, after any wx.login) → POST /v1/wechat/user-info, without re-login. */
  async function submitUserInfo(code) {
    const info = await wxUserInfo()
    const data = { encrypted_data: info.encryptedData, iv: info.iv }
    if (info.rawData && info.signature) {
      data.raw_data = info.rawData
      data.signature = info.signature
    }
    if (code) data.code = code
    const out = await request('POST', '/v1/wechat/user-info', { data, relogin: false })
    updateSession({ user_id: out.user_id, unionid_linked: out.unionid_linked })
    return out
  }

  /**
   * Makes sure wxlink knows the user's unionid. Logs in when there is no session; when the user is
   * not linked (`needs_user_info`), sends wx.getUserInfo's encrypted data. On 422 `decrypt_failed`
   * or `session_key_expired` it calls wx.login, takes fresh user data (the old data was encrypted
   * with the old key) and retries ONCE with `code`. On 429 `too_many_attempts` without
   * `Retry-After` (the session spent its budget of failed decryptions) it logs in ONCE more: a new
   * session with a new session_key; with `Retry-After` (the WeChat user's daily budget) it throws,
   * and `.retryAfter` says when to try again.
   * Other errors, and a second refusal, are thrown.
   *
   * Answers `{user_id, unionid_linked, merged}`; `user_id` changes when a provisional user is merged
   * into the user who already owned the unionid (`merged: true`).
   */
  async function ensureLinked() {
    if (!session) await login()
    else if (typeof session.unionid_linked !== 'boolean') await me()
    if (session.unionid_linked) {
      return { user_id: session.user_id, unionid_linked: true, merged: false }
    }
    let code
    let reloggedIn = false
    let retriedWithCode = false
    for (;;) {
      try {
        return await submitUserInfo(code)
      } catch (e) {
        if ((isInvalidToken(e) || isOutOfSessionAttempts(e)) && !reloggedIn) {
          // The token expired (a refresh renews it), or is gone, or its session may decrypt no
          // more: a new login (which may already bring the unionid) and fresh data.
          reloggedIn = true
          code = undefined
          const out = isInvalidToken(e) ? await renewSession() : (saveSession(null), await login())
          if (out.unionid_linked) return { user_id: out.user_id, unionid_linked: true, merged: false }
          continue
        }
        if (e instanceof WxlinkError && e.status === 422 && STALE_SESSION_KEY_CODES.includes(e.code) && !retriedWithCode) {
          retriedWithCode = true
          code = await wxLoginCode()
          continue
        }
        throw e
      }
    }
  }

  /**
   * POST /v1/wechat/phone-number with the code of `<button open-type="getPhoneNumber">`
   * (`e.detail.code`) → `{phone_number, pure_phone_number, country_code}`.
   */
  async function phoneNumber(code) {
    if (!code) {
      throw new WxlinkError('no phone code: the user refused, or the base library is older than 2.21.2', {
        code: 'invalid_request',
      })
    }
    return request('POST', '/v1/wechat/phone-number', { data: { code } })
  }

  /** POST /v1/logout; forgets the session locally in any case (an already dead token is fine). */
  async function logout() {
    if (!session) return
    const token = session.token
    saveSession(null)
    try {
      await send('POST', '/v1/logout', undefined, token)
    } catch (e) {
      if (!isInvalidToken(e)) throw e
    }
  }

  /**
   * Cancels the account (账号注销) for good: DELETE /v1/me. The token alone is not enough:
   * wxlink wants proof that the person is there, a fresh wx.login code of the same WeChat user,
   * sent as `{code}` (else 400 `reauthentication_required`; a code of another WeChat user is 403
   * `identity_mismatch`). Call it only from the user's own confirmed action. It never logs in by
   * itself: without a session, or with a dead token, it is `invalid_token` and the session is
   * forgotten. On success the session is forgotten too.
   */
  async function cancelAccount() {
    if (!session) throw new WxlinkError('not logged in', { code: 'invalid_token', status: 401 })
    const token = session.token
    const code = await wxLoginCode()
    try {
      await send('DELETE', '/v1/me', { code }, token)
    } catch (e) {
      if (isInvalidToken(e) && session && session.token === token) saveSession(null)
      throw e
    }
    if (session && session.token === token) saveSession(null)
  }

  return {
    login,
    ensureLinked,
    me,
    logout,
    cancelAccount,
    phoneNumber,
    request,
    /** the stored session `{token, refresh_token?, user_id, unionid_linked}`, or null */
    getSession: () => (session ? Object.assign({}, session) : null),
  }
}

module.exports = { createWxlink, WxlinkError, STALE_SESSION_KEY_CODES }
