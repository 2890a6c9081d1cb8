import { discoverUrl } from './kibana'

test('the link filters Discover on the trace id, in the app lines and the model batches', () => {
  const url = discoverUrl('https://kibana.example.org/', 'abc-123')
  expect(url.startsWith('https://kibana.example.org/app/discover#/?')).toBe(true)
  const state = decodeURI(url.split('#/?')[1])
  expect(state).toContain(`query:'trace.id : "abc-123" or inference.trace_ids : "abc-123"'`)
  expect(state).toContain('_g=(time:(from:now-7d,to:now))')
})

test('nothing outside the trace id alphabet reaches the URL', () => {
  expect(decodeURI(discoverUrl('https://k', `x')&evil=1`))).toContain('"xevil1"')
})
