import { applyEvent, type Ended, responseRequest, type ResponseEvent, snippets, splitEvents, STARTED } from './responses'

const turn = { model: 'storyteller', input: 'The frog', maxOutputTokens: 40, temperature: 0.8, topP: 0.95, previousId: null }

test('a turn sends only its text, and the previous response id once there is one', () => {
  expect(responseRequest(turn)).toEqual({ model: 'storyteller', input: 'The frog', max_output_tokens: 40, temperature: 0.8, top_p: 0.95, stream: true })
  expect(responseRequest({ ...turn, previousId: 'resp_1' })).toMatchObject({ input: 'The frog', previous_response_id: 'resp_1' })
})

const wire = (events: ResponseEvent[]) => events.map((data) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`).join('')
const read = (events: ResponseEvent[], cut: number): Ended => {
  // Arrive in two pieces cut anywhere: whole events only are read, the rest waits.
  const text = wire(events)
  const first = splitEvents(text.slice(0, cut))
  const second = splitEvents(first.rest + text.slice(cut))
  expect(second.rest).toBe('')
  return [...first.events, ...second.events].reduce((state, event) => applyEvent(state, event), STARTED)
}

test('deltas append; an incomplete response (max_output_tokens) is a normal end with its id', () => {
  const events = [
    { type: 'response.created', response: { id: 'resp_2', status: 'in_progress' } },
    { type: 'response.output_text.delta', delta: 'The frog ' },
    { type: 'response.output_text.delta', delta: 'jumped.' },
    { type: 'response.output_text.done' },
    { type: 'response.incomplete', response: { id: 'resp_2', status: 'incomplete' } },
  ]
  for (const cut of [0, 17, 90, wire(events).length]) {
    expect(read(events, cut)).toEqual({ id: 'resp_2', status: 'incomplete', text: 'The frog jumped.', error: null })
  }
  expect(read([events[0], { type: 'response.completed', response: { id: 'resp_2' } }], 5).status).toBe('completed')
})

test('an in-band error fails the turn with its code and message, the text so far kept', () => {
  const ended = read([
    { type: 'response.created', response: { id: 'resp_3' } },
    { type: 'response.output_text.delta', delta: 'Once' },
    { type: 'error', code: 'model_unavailable', message: 'The model stopped.', param: null },
    { type: 'response.failed', response: { id: 'resp_3', status: 'failed', error: { code: 'model_unavailable', message: 'The model stopped.' } } },
  ], 40)
  expect(ended.status).toBe('failed')
  expect(ended.text).toBe('Once')
  expect(ended.error?.code).toBe('model_unavailable')
  expect(ended.error?.message).toBe('The model stopped.')
})

test('the curl and Python snippets call /v1/responses with the conversation id', () => {
  const { curl, python } = snippets('http://x', { ...turn, input: "the frog's well", previousId: 'resp_4' })
  expect(curl).toContain('curl -N http://x/v1/responses')
  expect(curl).toContain('"previous_response_id":"resp_4"')
  expect(curl).toContain("frog'\\''s")
  expect(python).toContain('client.responses.create(')
  expect(python).toContain('previous_response_id="resp_4"')
  expect(snippets('http://x', turn).python).not.toContain('previous_response_id')
})
