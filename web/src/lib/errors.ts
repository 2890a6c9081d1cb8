/** Every failed call becomes one ApiError: what the UI shows, with the trace id to quote. */

export type ErrorBody = {
  error?: {
    code?: string
    message?: string
    param?: string | null
    trace_id?: string
    details?: Record<string, unknown>
  }
}

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly traceId: string | null
  readonly param: string | null
  readonly fields: Record<string, string[]>
  readonly retryAfter: number | null

  constructor(init: {
    status: number
    code: string
    message: string
    traceId?: string | null
    param?: string | null
    fields?: Record<string, string[]>
    retryAfter?: number | null
  }) {
    super(init.message)
    this.name = 'ApiError'
    this.status = init.status
    this.code = init.code
    this.traceId = init.traceId ?? null
    this.param = init.param ?? null
    this.fields = init.fields ?? {}
    this.retryAfter = init.retryAfter ?? null
  }
}

function fieldMessages(details: Record<string, unknown> | undefined): Record<string, string[]> {
  const fields: Record<string, string[]> = {}
  for (const [name, value] of Object.entries(details ?? {})) {
    if (Array.isArray(value)) fields[name] = value.map(String)
    else if (typeof value === 'string') fields[name] = [value]
    else if (value && typeof value === 'object') {
      // nested (a list item's fields): flatten under the top field
      fields[name] = Object.values(fieldMessages(value as Record<string, unknown>)).flat()
    }
  }
  return fields
}

/** Turn an HTTP answer (or a network failure) into an ApiError. */
export function toApiError(response: Response | null, body: unknown): ApiError {
  if (!response) {
    return new ApiError({
      status: 0,
      code: 'network_error',
      message: 'The service could not be reached. Check your connection and try again.',
    })
  }
  const error = (body as ErrorBody | null)?.error
  const retry = response.headers.get('Retry-After')
  let message = error?.message ?? `The service answered ${response.status}.`
  if (response.status === 429 && retry) message += ` Try again in ${retry} s.`
  return new ApiError({
    status: response.status,
    code: error?.code ?? 'http_error',
    message,
    traceId: error?.trace_id ?? response.headers.get('X-Trace-Id'),
    param: error?.param ?? null,
    fields: fieldMessages(error?.details),
    retryAfter: retry ? Number(retry) : null,
  })
}
