import { heat, modelsFor, storyText } from './playground'

test('each task lists only its own models', () => {
  const models = [
    { id: 'storyteller', task: 'text-generation' },
    { id: 'all-minilm-l6-v2', task: 'embedding' },
    { id: 'e5', task: 'embedding' },
  ]
  expect(modelsFor(models, 'embedding')).toEqual(['all-minilm-l6-v2', 'e5'])
  expect(modelsFor(models, 'text-generation')).toEqual(['storyteller'])
})

test('leading blank lines are dropped, the text and its inner lines kept', () => {
  expect(storyText('\n\n  \nthere was a frog.\n\nThe end.')).toBe('there was a frog.\n\nThe end.')
  expect(storyText(' there was')).toBe(' there was')
  expect(storyText('\r\n\r\nA')).toBe('A')
})

test('the heat scale is sequential: darker as similarity grows, readable text on every cell', () => {
  const luminance = (hex: string) => {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
  }
  const values = [-0.3, 0, 0.25, 0.5, 0.75, 1, 1.2]
  const shades = values.map((value) => luminance(heat(value).background))
  for (let i = 1; i < shades.length; i++) expect(shades[i]).toBeLessThanOrEqual(shades[i - 1])
  expect(heat(-0.3)).toEqual(heat(0))
  expect(heat(1).color).toBe('#ffffff')
  expect(heat(0.1).color).toBe('#0f172a')
})
