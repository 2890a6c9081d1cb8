import type { RejectedRow, UsageRow } from '../client/types.gen'

export type DayPoint = { date: string; errors: number; rejected: number; [token: string]: number | string }
export type Totals = { requests: number; batch: number; errors: number; rejected: number; tokensIn: number; tokensOut: number }
export type ModelLine = { model: string; calls: number; batch: number; errors: number; tokensIn: number; tokensOut: number; units: number }

/** Batch lines are metered under `batch_<endpoint>`, apart from interactive calls. */
export function isBatch(row: { endpoint?: string }): boolean {
  return (row.endpoint ?? '').startsWith('batch_')
}

export function tokenLabel(tokenId: number | null | undefined, names: Map<number, string>): string {
  if (tokenId === null || tokenId === undefined) return 'web session'
  return names.get(tokenId) ?? `token #${tokenId}`
}

/** Where a row's calls came from: the web session, a token by name, or a batch (and whose). */
export function sourceLabel(row: { token_id?: number | null; endpoint?: string }, names: Map<number, string>): string {
  const who = tokenLabel(row.token_id, names)
  return isBatch(row) ? `batch (${who})` : who
}

/** Where a kept completion came from, as the history shows it (batches keep none). */
export function historySource(tokenId: number | null | undefined, names: Map<number, string>): string {
  if (tokenId === null || tokenId === undefined) return 'the web session'
  const name = names.get(tokenId)
  return name ? `token “${name}”` : `token #${tokenId}`
}

/** Calls per model over the rows: interactive and batch lines apart, errors and tokens. */
export function byModel(rows: UsageRow[]): ModelLine[] {
  const lines = new Map<string, ModelLine>()
  for (const row of rows) {
    const model = row.model ?? 'no model (listing, errors)'
    const line = lines.get(model) ?? { model, calls: 0, batch: 0, errors: 0, tokensIn: 0, tokensOut: 0, units: 0 }
    if (isBatch(row)) line.batch += row.requests ?? 0
    else line.calls += row.requests ?? 0
    line.errors += row.errors ?? 0
    line.tokensIn += row.tokens_in ?? 0
    line.tokensOut += row.tokens_out ?? 0
    line.units += row.units ?? 0
    lines.set(model, line)
  }
  return [...lines.values()].sort((a, b) => b.calls + b.batch - (a.calls + a.batch) || a.model.localeCompare(b.model))
}

/** A handler model's units as the usage page shows them ("12 images"); a dash for models metered in tokens. */
export function unitsLabel(units: number, unit: string | undefined): string {
  if (!unit) return units ? units.toLocaleString('en-US') : '–'
  return `${units.toLocaleString('en-US')} ${unit}`
}

/** Calls per day per source (every day of the window, zeros included), errors and 429s beside. */
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
    const label = sourceLabel(row, names)
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
    requests: rows.reduce((sum, row) => sum + (isBatch(row) ? 0 : row.requests ?? 0), 0),
    batch: rows.reduce((sum, row) => sum + (isBatch(row) ? row.requests ?? 0 : 0), 0),
    errors: rows.reduce((sum, row) => sum + (row.errors ?? 0), 0),
    rejected: rejected.reduce((sum, row) => sum + (row.count ?? 0), 0),
    tokensIn: rows.reduce((sum, row) => sum + (row.tokens_in ?? 0), 0),
    tokensOut: rows.reduce((sum, row) => sum + (row.tokens_out ?? 0), 0),
  }
}

export type PersonLine = { userId: number; email: string; calls: number; batch: number; errors: number }

/** Usage across users (the admin's view): each by email, busiest first. */
export function perUser(rows: UsageRow[]): PersonLine[] {
  const people = new Map<number, PersonLine>()
  for (const row of rows) {
    const userId = row.user_id ?? 0
    const person = people.get(userId) ?? { userId, email: row.email ?? `user #${userId}`, calls: 0, batch: 0, errors: 0 }
    if (isBatch(row)) person.batch += row.requests ?? 0
    else person.calls += row.requests ?? 0
    person.errors += row.errors ?? 0
    people.set(userId, person)
  }
  return [...people.values()].sort((a, b) => b.calls + b.batch - (a.calls + a.batch) || a.email.localeCompare(b.email))
}
