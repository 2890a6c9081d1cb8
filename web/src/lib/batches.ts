import type { BatchOut } from '../client/types.gen'

/** Statuses in which a worker still has work to do: the page keeps polling while any is shown. */
export const ACTIVE = new Set(['validating', 'in_progress', 'finalizing', 'cancelling'])

export function isActive(batch: BatchOut): boolean {
  return ACTIVE.has(batch.status ?? '')
}

export function canCancel(batch: BatchOut): boolean {
  return batch.status === 'validating' || batch.status === 'in_progress'
}

/** Lines answered so far, out of all, as a whole percentage (0 while the total is unknown). */
export function progress(batch: BatchOut): { done: number; total: number; percent: number } {
  const counts = batch.request_counts ?? {}
  const total = counts.total ?? 0
  const done = (counts.completed ?? 0) + (counts.failed ?? 0)
  const percent = total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0
  return { done, total, percent }
}

export type BatchProblem = { line?: number | null; code?: string; message?: string }

/** Why a batch failed validation: OpenAI's `errors.data`, each with its line number. */
export function problems(batch: BatchOut): BatchProblem[] {
  const data = (batch.errors as { data?: BatchProblem[] } | null | undefined)?.data
  return Array.isArray(data) ? data : []
}

/** When a Unix time (seconds) was, for people. */
export function at(seconds: number | null | undefined): string {
  if (!seconds) return ''
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}
