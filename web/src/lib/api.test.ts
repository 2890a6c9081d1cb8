import { getV1Tokens } from '../client/sdk.gen'
import { call, configureClient, session } from './api'
import { ApiError } from './errors'

const user = { id: 1, email: 'ada@example.org', role: 'user' }
const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })

beforeEach(() => {
  configureClient('http://app.test')
  document.cookie = 'mg_csrf=csrf-value; path=/'
})
afterEach(() => {
  vi.unstubAllGlobals()
  session.clear()
})

test('every call carries a fresh trace id and the in-memory access token', async () => {
  const seen: Request[] = []
  vi.stubGlobal('fetch', vi.fn(async (request: Request) => {
    seen.push(request)
    return json(200, { data: [] })
  }))
  session.start('access-1', user)
  await call(getV1Tokens())
  await call(getV1Tokens())
  expect(seen[0].headers.get('Authorization')).toBe('Bearer access-1')
  const [first, second] = seen.map((request) => request.headers.get('X-Trace-Id'))
  expect(first).toMatch(/^[0-9a-f]{32}$/)
  expect(second).not.toBe(first)
})

test('a 401 is refreshed once through the cookie and CSRF header, then retried', async () => {
  const seen: string[] = []
  vi.stubGlobal('fetch', vi.fn(async (request: Request) => {
    const path = new URL(request.url).pathname
    seen.push(`${path} ${request.headers.get('Authorization') ?? request.headers.get('X-CSRF-TOKEN')}`)
    if (path === '/v1/auth/refresh') return json(200, { access_token: 'access-2', user })
    return request.headers.get('Authorization') === 'Bearer access-2'
      ? json(200, { data: [{ id: 3 }] })
      : json(401, { error: { code: 'token_expired', message: 'The token has expired.' } })
  }))
  session.start('access-1', user)
  expect(await call(getV1Tokens())).toEqual({ data: [{ id: 3 }] })
  expect(seen).toEqual(['/v1/tokens Bearer access-1', '/v1/auth/refresh csrf-value', '/v1/tokens Bearer access-2'])
  expect(session.token()).toBe('access-2')
})

test('when the refresh fails the session ends with the server\'s reason', async () => {
  vi.stubGlobal('fetch', vi.fn(async (request: Request) =>
    new URL(request.url).pathname === '/v1/auth/refresh'
      ? json(401, { error: { code: 'account_unavailable', message: 'This account is disabled.' } })
      : json(401, { error: { code: 'session_revoked', message: 'This session has ended; sign in again.' } }),
  ))
  const ended = vi.fn()
  const stop = session.onEnd(ended)
  session.start('access-1', user)
  await expect(call(getV1Tokens())).rejects.toBeInstanceOf(ApiError)
  expect(ended).toHaveBeenCalledWith('This account is disabled.')
  expect(session.token()).toBeNull()
  stop()
})
