/**
 * The one configured API client: the generated SDK (src/client) set up once.
 *
 * - every request gets a fresh `X-Trace-Id`;
 * - the access token lives in memory only; the refresh token is an httpOnly cookie
 *   the browser sends to /v1/auth, with the CSRF header read from its companion cookie;
 * - a 401 on a call made with an access token triggers one silent refresh (shared by
 *   concurrent callers) and one retry; if that fails the session ends and listeners
 *   (the router) send the user to the login page with the server's message;
 * - `call()` turns every failure into one `ApiError`.
 */
import { client } from '../client/client.gen'
import { postV1AuthRefresh } from '../client/sdk.gen'
import type { UserOut } from '../client/types.gen'
import { ApiError, toApiError } from './errors'

let accessToken: string | null = null
type Refreshed = { ok: true } | { ok: false; message?: string }
let refreshing: Promise<Refreshed> | null = null
type EndListener = (message: string) => void
const endListeners = new Set<EndListener>()
type UserListener = (user: UserOut | null) => void
const userListeners = new Set<UserListener>()

export function newTraceId(): string {
  return crypto.randomUUID().replaceAll('-', '')
}

export function readCookie(name: string): string | undefined {
  const prefix = `${name}=`
  return document.cookie
    .split('; ')
    .find((part) => part.startsWith(prefix))
    ?.slice(prefix.length)
}

export const session = {
  token: () => accessToken,
  start(token: string, user: UserOut) {
    accessToken = token
    userListeners.forEach((listener) => listener(user))
  },
  clear() {
    accessToken = null
    userListeners.forEach((listener) => listener(null))
  },
  /** The session ended behind the user's back (expired, revoked, account disabled). */
  end(message: string) {
    if (accessToken === null) return
    session.clear()
    endListeners.forEach((listener) => listener(message))
  },
  onEnd(listener: EndListener) {
    endListeners.add(listener)
    return () => endListeners.delete(listener)
  },
  onUser(listener: UserListener) {
    userListeners.add(listener)
    return () => userListeners.delete(listener)
  },
}

const NO_REFRESH = /\/v1\/auth\/(login|refresh|register|logout|logout-all|verify-email|forgot-password|reset-password|resend-verification)$/

/** Exchange the refresh cookie for a new access token; one at a time. */
export function refreshSession(): Promise<Refreshed> {
  refreshing ??= (async (): Promise<Refreshed> => {
    try {
      if (!readCookie('mg_csrf')) return { ok: false }
      const { data, error } = await postV1AuthRefresh()
      if (!data?.access_token || !data.user) {
        return { ok: false, message: (error as { error?: { message?: string } } | undefined)?.error?.message }
      }
      session.start(data.access_token, data.user)
      return { ok: true }
    } catch {
      return { ok: false }
    } finally {
      refreshing = null
    }
  })()
  return refreshing
}

/** fetch with a trace id, and one silent refresh and retry on a 401. */
export async function apiFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const request = new Request(input, init)
  if (!request.headers.has('X-Trace-Id')) request.headers.set('X-Trace-Id', newTraceId())
  const sentToken = request.headers.get('Authorization')?.replace(/^Bearer /, '') ?? null
  const retry = request.clone()
  const response = await fetch(request)
  const path = new URL(request.url, window.location.origin).pathname
  if (response.status !== 401 || !sentToken || sentToken !== accessToken || NO_REFRESH.test(path)) {
    return response
  }
  const body = await response.clone().json().catch(() => null)
  const refreshed: Refreshed =
    body?.error?.code === 'account_unavailable' ? { ok: false } : await refreshSession()
  if (!refreshed.ok) {
    // The refresh's own answer says most (a disabled account); else the call's.
    const message = refreshed.message ?? body?.error?.message
    session.end(message ?? 'Your session has ended. Please sign in again.')
    return response
  }
  retry.headers.set('Authorization', `Bearer ${accessToken}`)
  retry.headers.set('X-Trace-Id', newTraceId())
  return fetch(retry)
}

export function configureClient(baseUrl = ''): void {
  client.setConfig({
    baseUrl,
    credentials: 'same-origin',
    fetch: apiFetch,
    auth: (auth) => {
      if (auth.name === 'X-CSRF-TOKEN') return readCookie('mg_csrf')
      if (auth.in === 'cookie') return undefined // the browser sends httpOnly cookies itself
      return accessToken ?? undefined
    },
  })
}

type Result<T> = { data?: T; error?: unknown; response?: Response }

/** Await a generated SDK call; return its data or throw one ApiError. */
export async function call<T>(pending: Promise<Result<T>>): Promise<T> {
  let result: Result<T>
  try {
    result = await pending
  } catch (error) {
    if (error instanceof ApiError) throw error
    throw toApiError(null, null)
  }
  if (result.error !== undefined || !result.response?.ok) {
    throw toApiError(result.response ?? null, result.error ?? null)
  }
  return result.data as T
}
