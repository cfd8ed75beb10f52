/**
 * A stand-in for the mini program's `wx` global, driven by the WeChat simulator's control API
 * (crates/wechat-sim/README.md), for running wxlink.js under node:
 *
 * - wx.login       → POST {sim}/__sim/login {appid, openid, unionid}: a fresh code, and the user's
 *                    session_key rotates, as on a phone;
 * - wx.getUserInfo → POST {sim}/__sim/user-info {appid, openid}: encryptedData (with openId and
 *                    unionId) under the current session_key, iv, rawData, signature;
 * - wx.request     → global fetch, answering {statusCode, data, header} like WeChat (JSON parsed);
 * - wx.getStorageSync / setStorageSync / removeStorageSync → an in-memory map.
 *
 * Every call is recorded (`calls`, `requests`) so tests can count logins and retries.
 */
'use strict'

function deliver(options, promise, okMsg) {
  const o = options || {}
  promise.then(
    (res) => {
      if (o.success) o.success(Object.assign({ errMsg: `${okMsg}:ok` }, res))
      if (o.complete) o.complete(res)
    },
    (e) => {
      const err = { errMsg: `${okMsg}:fail ${e && e.message ? e.message : e}` }
      if (o.fail) o.fail(err)
      if (o.complete) o.complete(err)
    },
  )
}

/**
 * @param {{simUrl: string, appid: string, openid: string, unionid?: string}} user  the WeChat user
 *   behind this phone, in one mini program
 */
function createWxStub(user) {
  const { simUrl, appid, openid, unionid } = user
  const storage = new Map()
  const calls = { login: 0, getUserInfo: 0, request: 0 }
  /** every wx.request: {method, path, data, hasAuth, status, body} */
  const requests = []

  async function sim(path, body) {
    const res = await fetch(simUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const json = await res.json()
    if (!res.ok) throw new Error(`simulator ${path}: HTTP ${res.status} ${JSON.stringify(json)}`)
    return json
  }

  const wx = {
    login(options) {
      calls.login += 1
      const body = { appid, openid }
      if (unionid) body.unionid = unionid
      deliver(options, sim('/__sim/login', body).then((r) => ({ code: r.code })), 'login')
    },

    getUserInfo(options) {
      calls.getUserInfo += 1
      const withCredentials = !options || options.withCredentials !== false
      const p = sim('/__sim/user-info', { appid, openid, include_unionid: true }).then((r) => {
        const res = { userInfo: JSON.parse(r.raw_data), rawData: r.raw_data, signature: r.signature }
        if (withCredentials) Object.assign(res, { encryptedData: r.encrypted_data, iv: r.iv })
        return res
      })
      deliver(options, p, 'getUserInfo')
    },

    request(options) {
      calls.request += 1
      const method = (options.method || 'GET').toUpperCase()
      const headers = Object.assign({}, options.header)
      const init = { method, headers }
      if (options.data !== undefined && method !== 'GET') {
        init.body = typeof options.data === 'string' ? options.data : JSON.stringify(options.data)
      }
      const url = new URL(options.url)
      const record = {
        method,
        path: url.pathname,
        data: options.data,
        hasAuth: Object.keys(headers).some((k) => k.toLowerCase() === 'authorization'),
      }
      requests.push(record)
      const signal = options.timeout ? AbortSignal.timeout(options.timeout) : undefined
      const p = fetch(options.url, Object.assign(init, { signal })).then(async (res) => {
        const text = await res.text()
        let data = text
        if ((options.dataType || 'json') === 'json' && text !== '') {
          try {
            data = JSON.parse(text)
          } catch (_) {
            // WeChat hands over the text when it is not JSON
          }
        }
        record.status = res.status
        record.body = data
        return { statusCode: res.status, data, header: Object.fromEntries(res.headers) }
      })
      deliver(options, p, 'request')
    },

    getStorageSync(key) {
      return storage.has(key) ? JSON.parse(storage.get(key)) : ''
    },
    setStorageSync(key, value) {
      storage.set(key, JSON.stringify(value))
    },
    removeStorageSync(key) {
      storage.delete(key)
    },
  }

  return {
    wx,
    calls,
    requests,
    storage,
    /** wx.login behind the client's back: the session_key wxlink holds goes stale. */
    loginBehindTheBack() {
      return new Promise((resolve, reject) => wx.login({ success: resolve, fail: reject }))
    },
    /** The code of the getPhoneNumber button for this user. */
    async phoneCode(phoneNumber) {
      const r = await sim('/__sim/phone-code', { appid, openid, phone_number: phoneNumber })
      return r.code
    },
    /** Requests to one wxlink path, in order. */
    requestsTo(path) {
      return requests.filter((r) => r.path === path)
    },
  }
}

module.exports = { createWxStub }
