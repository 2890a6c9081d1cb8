import { byDay, byModel, historySource, perUser, sourceLabel, totals, unitsLabel } from './usage'

const today = new Date('2026-11-23T12:00:00Z')
const rows = [
  { date: '2026-11-23', token_id: 1, endpoint: '/v1/embeddings', requests: 3, errors: 1, tokens_in: 30, tokens_out: 0 },
  { date: '2026-11-23', token_id: null, endpoint: '/v1/chat/completions', requests: 2, errors: 0, tokens_in: 10, tokens_out: 40 },
  { date: '2026-11-21', token_id: 1, endpoint: '/v1/embeddings', requests: 5, errors: 0, tokens_in: 50, tokens_out: 0 },
  { date: '2026-10-01', token_id: 1, endpoint: '/v1/embeddings', requests: 99, errors: 0, tokens_in: 1, tokens_out: 0 },
]
const batchRows = [
  { date: '2026-11-23', token_id: 1, endpoint: 'batch_embeddings', model: 'all-minilm-l6-v2', requests: 1200, errors: 1, tokens_in: 9000, tokens_out: 0 },
  { date: '2026-11-23', token_id: 1, endpoint: 'embeddings', model: 'all-minilm-l6-v2', requests: 2, errors: 0, tokens_in: 20, tokens_out: 0 },
  { date: '2026-11-23', token_id: null, endpoint: 'chat_completions', model: 'storyteller', requests: 1, errors: 0, tokens_in: 5, tokens_out: 50 },
  { date: '2026-11-23', token_id: null, endpoint: 'models', model: null, requests: 4, errors: 0, tokens_in: 0, tokens_out: 0 },
]
const rejected = [{ date: '2026-11-22', endpoint: '/v1/embeddings', count: 4 }]

test('every day of the window is a point, with calls per token and errors and 429s', () => {
  const { points, series } = byDay(rows.slice(0, 3), rejected, 7, new Map([[1, 'laptop']]), today)
  expect(points).toHaveLength(7)
  expect(points[0].date).toBe('2026-11-17')
  expect(series).toEqual(['laptop', 'web session'])
  expect(points[6]).toMatchObject({ date: '2026-11-23', laptop: 3, 'web session': 2, errors: 1, rejected: 0 })
  expect(points[5]).toMatchObject({ date: '2026-11-22', laptop: 0, rejected: 4 })
  expect(points[4]).toMatchObject({ laptop: 5 })
})

test('totals are the sums of the rows', () => {
  expect(totals(rows, rejected)).toEqual({ requests: 109, batch: 0, errors: 1, rejected: 4, tokensIn: 91, tokensOut: 40 })
})

test('a day outside the window is not drawn', () => {
  const { points } = byDay(rows, [], 7, new Map(), today)
  expect(points.reduce((sum, point) => sum + Number(point['token #1'] ?? 0), 0)).toBe(8)
})

test('batch lines are counted apart from calls, and drawn as their own series', () => {
  expect(totals(batchRows, [])).toMatchObject({ requests: 7, batch: 1200, errors: 1 })
  const { series, points } = byDay(batchRows, [], 1, new Map([[1, 'laptop']]), today)
  expect(series).toEqual(['batch (laptop)', 'laptop', 'web session'])
  expect(points[0]).toMatchObject({ 'batch (laptop)': 1200, laptop: 2, 'web session': 5, errors: 1 })
})

test('each row says where it came from', () => {
  const names = new Map([[1, 'laptop']])
  expect(sourceLabel({ token_id: null, endpoint: 'embeddings' }, names)).toBe('web session')
  expect(sourceLabel({ token_id: 1, endpoint: 'embeddings' }, names)).toBe('laptop')
  expect(sourceLabel({ token_id: 1, endpoint: 'batch_chat_completions' }, names)).toBe('batch (laptop)')
  expect(sourceLabel({ token_id: 9, endpoint: 'completions' }, names)).toBe('token #9')
  expect(historySource(null, names)).toBe('the web session')
  expect(historySource(1, names)).toBe('token “laptop”')
})

test('per model: calls and batch lines apart, busiest first', () => {
  expect(byModel(batchRows)).toEqual([
    { model: 'all-minilm-l6-v2', calls: 2, batch: 1200, errors: 1, tokensIn: 9020, tokensOut: 0, units: 0 },
    { model: 'no model (listing, errors)', calls: 4, batch: 0, errors: 0, tokensIn: 0, tokensOut: 0, units: 0 },
    { model: 'storyteller', calls: 1, batch: 0, errors: 0, tokensIn: 5, tokensOut: 50, units: 0 },
  ])
})

test("a handler model's row counts its units, named by the model's unit", () => {
  const ocr = [
    { date: '2026-11-22', token_id: 1, endpoint: 'predict', model: 'ocr-en', requests: 2, errors: 0, tokens_in: 0, tokens_out: 0, units: 2 },
    { date: '2026-11-23', token_id: null, endpoint: 'predict', model: 'ocr-en', requests: 3, errors: 1, tokens_in: 0, tokens_out: 0, units: 2 },
  ]
  expect(byModel(ocr)).toEqual([{ model: 'ocr-en', calls: 5, batch: 0, errors: 1, tokensIn: 0, tokensOut: 0, units: 4 }])
  expect(unitsLabel(1234, 'images')).toBe('1,234 images')
  expect(unitsLabel(0, undefined)).toBe('–')
})

test('usage across users names each by email, busiest first', () => {
  const rows = [
    { date: '2026-11-23', user_id: 1, email: 'root@example.org', token_id: null, endpoint: 'models', model: null, requests: 2, errors: 0 },
    { date: '2026-11-23', user_id: 2, email: 'reader@example.org', token_id: 5, endpoint: 'embeddings', model: 'e5', requests: 3, errors: 1 },
    { date: '2026-11-23', user_id: 2, email: 'reader@example.org', token_id: 5, endpoint: 'batch_embeddings', model: 'e5', requests: 10, errors: 0 },
  ]
  expect(perUser(rows)).toEqual([
    { userId: 2, email: 'reader@example.org', calls: 3, batch: 10, errors: 1 },
    { userId: 1, email: 'root@example.org', calls: 2, batch: 0, errors: 0 },
  ])
})
