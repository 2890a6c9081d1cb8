/** The playground's pure parts: which models suit a task, the story as shown, the heat map's scale. */
export type Listed = { id?: string; task?: string }

export const STORY_START = 'Once upon a time'

export function modelsFor(models: Listed[], task: 'embedding' | 'text-generation'): string[] {
  return models.filter((model) => model.task === task && model.id).map((model) => model.id!)
}

/** The generated text without the blank lines a plain model often starts with. */
export function storyText(text: string): string {
  return text.replace(/^(?:[ \t]*\r?\n)+/, '')
}

// One sequential scale (light to dark blue, as ColorBrewer's "Blues"): 0 or below is the
// lightest, 1 the darkest; the text turns white where the cell is dark.
const STOPS = ['#f7fbff', '#deebf7', '#c6dbef', '#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b']

export function heat(value: number): { background: string; color: string } {
  const clamped = Math.max(0, Math.min(1, Number.isFinite(value) ? value : 0))
  const index = Math.round(clamped * (STOPS.length - 1))
  return { background: STOPS[index], color: index >= 6 ? '#ffffff' : '#0f172a' }
}

/** The legend's gradient: the same stops, left (0) to right (1). */
export const HEAT_GRADIENT = `linear-gradient(to right, ${STOPS.join(', ')})`
