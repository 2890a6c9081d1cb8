import { byDay, totals } from './usage'

const today = new Date('2026-11-23T12:00:00Z')
const rows = [
  { date: '2026-11-23', token_id: 1, endpoint: '/v1/embeddings', requests: 3, errors: 1, tokens_in: 30, tokens_out: 0 },
  { date: '2026-11-23', token_id: null, endpoint: '/v1/chat/completions', requests: 2, errors: 0, tokens_in: 10, tokens_out: 40 },
  { date: '2026-11-21', token_id: 1, endpoint: '/v1/embeddings', requests: 5, errors: 0, tokens_in: 50, tokens_out: 0 },
  { date: '2026-10-01', token_id: 1, endpoint: '/v1/embeddings', requests: 99, errors: 0, tokens_in: 1, tokens_out: 0 },
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
  expect(totals(rows, rejected)).toEqual({ requests: 109, errors: 1, rejected: 4, tokensIn: 91, tokensOut: 40 })
})

test('a day outside the window is not drawn', () => {
  const { points } = byDay(rows, [], 7, new Map(), today)
  expect(points.reduce((sum, point) => sum + Number(point['token #1'] ?? 0), 0)).toBe(8)
})
