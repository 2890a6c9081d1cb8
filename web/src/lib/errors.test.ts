import { toApiError } from './errors'

test('a 429 carries Retry-After in its message and as a number', () => {
  const response = new Response(null, { status: 429, headers: { 'Retry-After': '17', 'X-Trace-Id': 'from-header' } })
  const error = toApiError(response, { error: { code: 'rate_limited', message: 'Too many requests.' } })
  expect(error.status).toBe(429)
  expect(error.retryAfter).toBe(17)
  expect(error.message).toBe('Too many requests. Try again in 17 s.')
  expect(error.traceId).toBe('from-header')
})

test("the body's trace id and field details are kept", () => {
  const response = new Response(null, { status: 400 })
  const error = toApiError(response, {
    error: { code: 'validation_error', message: 'Bad.', trace_id: 't1', param: 'input', details: { input: ['Too long.'], messages: { 0: { content: 'Empty.' } } } },
  })
  expect(error.traceId).toBe('t1')
  expect(error.fields).toEqual({ input: ['Too long.'], messages: ['Empty.'] })
})

test('a network failure is an error the UI can show too', () => {
  const error = toApiError(null, null)
  expect(error.code).toBe('network_error')
  expect(error.message).toMatch(/could not be reached/)
})
