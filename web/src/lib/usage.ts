import type { RejectedRow, UsageRow } from '../client/types.gen'

export type DayPoint = { date: string; errors: number; rejected: number; [token: string]: number | string }
export type Totals = { requests: number; errors: number; rejected: number; tokensIn: number; tokensOut: number }

export function tokenLabel(tokenId: number | null | undefined, names: Map<number, string>): string {
  if (tokenId === null || tokenId === undefined) return 'web session'
  return names.get(tokenId) ?? `token #${tokenId}`
}

/** Calls per day per token (every day of the window, zeros included), errors and 429s beside. */
export function byDay(
  rows: UsageRow[],
  rejected: RejectedRow[],
  days: number,
  names: Map<number, string>,
  today = new Date(),
): { points: DayPoint[]; series: string[] } {
  const points = new Map<string, DayPoint>()
  for (let back = days - 1; back >= 0; back--) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back))
    const date = day.toISOString().slice(0, 10)
    points.set(date, { date, errors: 0, rejected: 0 })
  }
  const series = new Set<string>()
  for (const row of rows) {
    const point = points.get(row.date ?? '')
    if (!point) continue
    const label = tokenLabel(row.token_id, names)
    series.add(label)
    point[label] = Number(point[label] ?? 0) + (row.requests ?? 0)
    point.errors += row.errors ?? 0
  }
  for (const row of rejected) {
    const point = points.get(row.date ?? '')
    if (point) point.rejected += row.count ?? 0
  }
  const labels = [...series].sort()
  for (const point of points.values()) for (const label of labels) point[label] ??= 0
  return { points: [...points.values()], series: labels }
}

export function totals(rows: UsageRow[], rejected: RejectedRow[]): Totals {
  return {
    requests: rows.reduce((sum, row) => sum + (row.requests ?? 0), 0),
    errors: rows.reduce((sum, row) => sum + (row.errors ?? 0), 0),
    rejected: rejected.reduce((sum, row) => sum + (row.count ?? 0), 0),
    tokensIn: rows.reduce((sum, row) => sum + (row.tokens_in ?? 0), 0),
    tokensOut: rows.reduce((sum, row) => sum + (row.tokens_out ?? 0), 0),
  }
}
