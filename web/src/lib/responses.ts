/**
 * The playground's chat over `POST /v1/responses`: the request (each turn sends only the
 * new text and the previous response's id) and the typed server-sent events read into
 * the text so far and how the response ended.
 */
import { apiFetch, session } from './api'
import { ApiError, toApiError } from './errors'

export type Turn = { model: string; input: string; maxOutputTokens: number; temperature: number; topP: number; previousId: string | null }

export function responseRequest(turn: Turn): Record<string, unknown> {
  return {
    model: turn.model,
    input: turn.input,
    max_output_tokens: turn.maxOutputTokens,
    temperature: turn.temperature,
    top_p: turn.topP,
    ...(turn.previousId ? { previous_response_id: turn.previousId } : {}),
    stream: true,
  }
}

export type Ended = { id: string | null; status: 'in_progress' | 'completed' | 'incomplete' | 'failed'; text: string; error: ApiError | null }
export type ResponseEvent = { type?: string; delta?: string; code?: string; message?: string; param?: string | null; response?: { id?: string; status?: string; error?: { code?: string; message?: string } | null } }

export const STARTED: Ended = { id: null, status: 'in_progress', text: '', error: null }

/** Split what has arrived into whole events (JSON of their `data:` lines) and the rest. */
export function splitEvents(buffer: string): { events: ResponseEvent[]; rest: string } {
  const events: ResponseEvent[] = []
  let end: number
  while ((end = buffer.indexOf('\n\n')) >= 0) {
    const data = buffer.slice(0, end).split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n')
    buffer = buffer.slice(end + 2)
    if (data) events.push(JSON.parse(data))
  }
  return { events, rest: buffer }
}

/** One event applied: deltas append; `completed`/`incomplete` end it well, `error`/`failed` badly. */
export function applyEvent(state: Ended, event: ResponseEvent, status = 200): Ended {
  const failure = (code?: string, message?: string, param?: string | null) =>
    state.error ?? new ApiError({ status, code: code ?? 'server_error', message: message ?? 'The response failed.', param })
  switch (event.type) {
    case 'response.created':
      return { ...state, id: event.response?.id ?? state.id }
    case 'response.output_text.delta':
      return { ...state, text: state.text + (event.delta ?? '') }
    case 'response.completed':
    case 'response.incomplete':
      return { ...state, id: event.response?.id ?? state.id, status: event.type === 'response.completed' ? 'completed' : 'incomplete' }
    case 'error':
      return { ...state, error: failure(event.code, event.message, event.param) }
    case 'response.failed':
      return { ...state, status: 'failed', error: failure(event.response?.error?.code, event.response?.error?.message) }
    default:
      return state
  }
}

/**
 * Stream one turn, calling `onText` with the text so far. Resolves with how it ended
 * (its id is the next turn's `previous_response_id`); throws an ApiError when it failed.
 * Abort `signal` to stop: the server ends the generation and keeps no response.
 */
export async function streamResponse(turn: Turn, onText: (text: string) => void, signal: AbortSignal): Promise<Ended> {
  const response = await apiFetch('/v1/responses', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.token()}` },
    body: JSON.stringify(responseRequest(turn)),
    signal,
  })
  if (!response.ok || !response.body) throw toApiError(response, await response.json().catch(() => null))
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let state = STARTED
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    const { events, rest } = splitEvents(buffer + value)
    buffer = rest
    for (const event of events) state = applyEvent(state, event, response.status)
    if (events.length) onText(state.text)
  }
  if (state.error) throw state.error
  if (state.status === 'in_progress') throw new ApiError({ status: 0, code: 'network_error', message: 'The answer stopped before its end.' })
  return state
}

/** The same turn as curl and as OpenAI's Python client. */
export function snippets(base: string, turn: Turn): { curl: string; python: string } {
  const json = JSON.stringify(responseRequest(turn))
  const curl = `curl -N ${base}/v1/responses \\\n  -H "Authorization: Bearer $MODELGATE_TOKEN" \\\n  -H "Content-Type: application/json" \\\n  -d '${json.replaceAll("'", "'\\''")}'`
  const previous = turn.previousId ? `\n    previous_response_id=${JSON.stringify(turn.previousId)},` : ''
  const python = `import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key=os.environ["MODELGATE_TOKEN"])\nstream = client.responses.create(\n    model=${JSON.stringify(turn.model)},\n    input=${JSON.stringify(turn.input)},${previous}\n    max_output_tokens=${turn.maxOutputTokens}, temperature=${turn.temperature}, top_p=${turn.topP},\n    stream=True,\n)\nfor event in stream:\n    if event.type == "response.output_text.delta":\n        print(event.delta, end="")`
  return { curl, python }
}
