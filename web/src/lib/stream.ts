import { apiFetch, session } from './api'
import { toApiError } from './errors'

/**
 * Stream a chat completion (`stream: true`), calling `onText` with each piece as it
 * arrives. Server-sent events are read by hand: the generated client has no streaming.
 * Abort `signal` to stop; the server ends the generation when the connection closes.
 */
export async function streamChat(
  body: Record<string, unknown>,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<string | null> {
  const response = await apiFetch('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.token()}` },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  })
  if (!response.ok || !response.body) {
    throw toApiError(response, await response.json().catch(() => null))
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let finish: string | null = null
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue
        const data = line.slice(6)
        if (data === '[DONE]') return finish
        const chunk = JSON.parse(data)
        if (chunk.error) throw toApiError(response, chunk)
        const choice = chunk.choices?.[0]
        if (choice?.delta?.content) onText(choice.delta.content)
        if (choice?.finish_reason) finish = choice.finish_reason
      }
    }
  }
  return finish
}

/** Cosine similarity of unit vectors (the API returns them normalised). */
export function similarity(vectors: number[][]): number[][] {
  return vectors.map((a) => vectors.map((b) => a.reduce((sum, value, index) => sum + value * b[index], 0)))
}
