export function when(value: string | null | undefined, never = 'never'): string {
  if (!value) return never
  return new Date(value).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

export function count(value: number): string {
  return value.toLocaleString()
}
