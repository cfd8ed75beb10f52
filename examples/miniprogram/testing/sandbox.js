/**
 * Starts `wxlink serve --sandbox` for tests: the real service with a built-in WeChat simulator.
 *
 * The binary is $WXLINK_BIN, else <repo>/target/debug/wxlink. It runs in a fresh temporary
 * directory (its data goes to ./wxlink-sandbox/ there) on a free port; the two URLs are read from
 * the first lines it prints:
 *   wxlink sandbox listening on http://ADDR
 *   WeChat simulator on http://SIMADDR   (demo apps: …)
 */
'use strict'

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
/** The sandbox's demo mini programs (crates/api/src/sandbox.rs). */
const UNBOUND_APP = 'wxd0000000000000a1' // code2Session never gives a unionid
const BOUND_APP = 'wxd0000000000000b2' // code2Session gives the unionid

function wxlinkBinary() {
  const bin = process.env.WXLINK_BIN || path.join(REPO_ROOT, 'target', 'debug', 'wxlink')
  if (!fs.existsSync(bin)) {
    throw new Error(`no wxlink binary at ${bin}: build it first: cargo build -p wxlink-api (or set WXLINK_BIN)`)
  }
  return bin
}

/**
 * @param {{startTimeoutMs?: number, env?: Record<string, string>}} [opts] `env`: more
 *   `WXLINK__…` settings, e.g. `{ WXLINK__TOKENS__FORMAT: 'jwt' }`
 * @returns {Promise<{baseUrl: string, simUrl: string, stop: () => Promise<void>, logs: () => string}>}
 */
async function startSandbox(opts) {
  const startTimeoutMs = (opts && opts.startTimeoutMs) || 30000
  const bin = wxlinkBinary()
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'wxlink-miniprogram-test-'))
  // Nothing of the caller's wxlink configuration leaks in (e.g. WXLINK__DATABASE__URL).
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WXLINK__')) env[k] = v
  env.WXLINK__SERVER__BIND = '127.0.0.1:0'
  env.WXLINK_LOG = env.WXLINK_LOG || 'warn'
  env.NO_COLOR = '1'
  Object.assign(env, (opts && opts.env) || {})

  const child = spawn(bin, ['serve', '--sandbox'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stderr = ''
  const keep = (s, chunk) => (s + chunk).slice(-20000)
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (c) => {
    stderr = keep(stderr, c)
  })
  child.stdout.setEncoding('utf8')

  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let stopped = false
  const killOnExit = () => {
    if (stopped) return
    stopped = true
    child.kill('SIGKILL')
    fs.rmSync(cwd, { recursive: true, force: true })
  }
  process.once('exit', killOnExit)
  // Killed from outside (Ctrl-C, a CI timeout): take the sandbox along.
  const onSignal = (signal) => {
    killOnExit()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  async function stop() {
    if (stopped) return
    stopped = true
    process.removeListener('exit', killOnExit)
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      let timer
      const timeout = new Promise((resolve) => {
        timer = setTimeout(resolve, 5000, 'timeout')
      })
      const outcome = await Promise.race([exited, timeout])
      clearTimeout(timer)
      if (outcome === 'timeout') {
        child.kill('SIGKILL')
        await exited
      }
    }
    fs.rmSync(cwd, { recursive: true, force: true })
  }

  try {
    const urls = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the sandbox printed no URLs within ${startTimeoutMs} ms`)),
        startTimeoutMs,
      )
      child.once('error', (e) => {
        clearTimeout(timer)
        reject(new Error(`cannot start ${bin}: ${e.message}`))
      })
      exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`the sandbox exited early (code ${code}, signal ${signal})`))
      })
      child.stdout.on('data', (c) => {
        output = keep(output, c)
        const base = /wxlink sandbox listening on (http:\/\/\S+)/.exec(output)
        const sim = /WeChat simulator on (http:\/\/\S+)/.exec(output)
        if (base && sim) {
          clearTimeout(timer)
          resolve({ baseUrl: base[1], simUrl: sim[1] })
        }
      })
    })
    // Drain stdout from now on so the pipe never fills.
    child.stdout.on('data', () => {})
    return Object.assign(urls, { stop, logs: () => `stdout:\n${output}\nstderr:\n${stderr}` })
  } catch (e) {
    await stop()
    e.message += `\n--- sandbox output ---\nstdout:\n${output}\nstderr:\n${stderr}`
    throw e
  }
}

module.exports = { startSandbox, wxlinkBinary, UNBOUND_APP, BOUND_APP, REPO_ROOT }
