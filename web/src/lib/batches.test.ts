import { describe, expect, it } from 'vitest'

import { canCancel, isActive, problems, progress } from './batches'

describe('batches', () => {
  it('counts answered lines, failed ones included, against the total', () => {
    expect(progress({ status: 'in_progress', request_counts: { total: 8, completed: 3, failed: 1 } })).toEqual({ done: 4, total: 8, percent: 50 })
    expect(progress({ status: 'validating', request_counts: { total: 0, completed: 0, failed: 0 } }).percent).toBe(0)
    expect(progress({ status: 'completed', request_counts: { total: 3, completed: 3, failed: 0 } }).percent).toBe(100)
  })

  it('polls and offers cancel only while a worker has work', () => {
    expect(isActive({ status: 'cancelling' })).toBe(true)
    expect(isActive({ status: 'completed' })).toBe(false)
    expect(canCancel({ status: 'in_progress' })).toBe(true)
    expect(canCancel({ status: 'cancelling' })).toBe(false)
  })

  it('lists validation problems with their lines', () => {
    const failed = { status: 'failed' as const, errors: { object: 'list', data: [{ line: 2, code: 'invalid_json_line', message: 'This line is not valid JSON.' }] } }
    expect(problems(failed)).toEqual([{ line: 2, code: 'invalid_json_line', message: 'This line is not valid JSON.' }])
    expect(problems({ status: 'completed', errors: null })).toEqual([])
  })
})
